//! The subscription index: filters → subscribers, matched against topic names.
//!
//! A trie with one node per filter level. Each node keeps its literal children in a
//! map keyed by level text (a vector while small, a B-tree once large), and its `+` child apart from them, so a lookup walks
//! straight down the name: at each node it follows the literal child for the next
//! name level (one map lookup) and the `+` child, and reports the `#` subscriptions
//! hanging off the node. Subscriptions whose filter ends at a node live in that node.
//!
//! Nothing in this module recurses: lookups use a small work stack that lives on the
//! call stack (spilling to the heap only past [`INLINE_BRANCHES`] pending branches),
//! and dropping a deep trie is iterative, so a filter of 65535 `/` characters is as
//! safe as `a/b`.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use crate::small_map::SmallMap;
use crate::TopicFilter;

/// Pending branches a lookup keeps on the call stack before it spills to the heap.
pub const INLINE_BRANCHES: usize = 16;

/// The subscriptions that share one filter: the filter text once, then one value
/// per subscriber.
struct Leaf<K, V> {
    filter: TopicFilter,
    subs: SmallMap<K, V>,
}

/// One level of the trie.
struct Node<K, V> {
    /// Children for literal levels (including the empty level `""`).
    literal: SmallMap<Box<str>, Self>,
    /// Child for a `+` level.
    plus: Option<Box<Self>>,
    /// Subscriptions whose filter ends at this node (boxed: most nodes have none,
    /// and a small node keeps the literal maps small).
    exact: Option<Box<Leaf<K, V>>>,
    /// Subscriptions whose filter is this node's path followed by `/#` (or `#` alone
    /// at the root).
    hash: Option<Box<Leaf<K, V>>>,
}

impl<K, V> Node<K, V> {
    const fn new() -> Self {
        Self {
            literal: SmallMap::new(),
            plus: None,
            exact: None,
            hash: None,
        }
    }

    fn child_count(&self) -> usize {
        self.literal.len() + usize::from(self.plus.is_some())
    }

    fn has_subscriptions(&self) -> bool {
        self.exact.is_some() || self.hash.is_some()
    }

    /// Moves this node's children into `out`, leaving it childless.
    fn take_children(&mut self, out: &mut Vec<Self>) {
        if !self.literal.is_empty() {
            out.extend(core::mem::take(&mut self.literal).into_values());
        }
        if let Some(plus) = self.plus.take() {
            out.push(*plus);
        }
    }

    /// The child for one filter level (`+` or literal); `#` has no child node.
    fn child(&self, level: &str) -> Option<&Self> {
        if level == "+" {
            self.plus.as_deref()
        } else {
            self.literal.get(level)
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Self> {
        if level == "+" {
            self.plus.as_deref_mut()
        } else {
            self.literal.get_mut(level)
        }
    }

    fn leaves(&self) -> impl Iterator<Item = &Leaf<K, V>> {
        self.exact
            .as_deref()
            .into_iter()
            .chain(self.hash.as_deref())
    }
}

impl<K, V> Drop for Node<K, V> {
    /// Frees the subtree without recursion, so a very deep trie cannot overflow the
    /// stack: children are detached into a list before they are dropped.
    fn drop(&mut self) {
        if self.child_count() == 0 {
            return;
        }
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut node) = pending.pop() {
            node.take_children(&mut pending);
        }
    }
}

/// A stack that holds its first [`INLINE_BRANCHES`] items in place.
struct WorkStack<T: Copy> {
    inline: [Option<T>; INLINE_BRANCHES],
    inline_len: usize,
    spill: Vec<T>,
}

impl<T: Copy> WorkStack<T> {
    const fn new() -> Self {
        Self {
            inline: [None; INLINE_BRANCHES],
            inline_len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, item: T) {
        if self.spill.is_empty() {
            if let Some(slot) = self.inline.get_mut(self.inline_len) {
                *slot = Some(item);
                self.inline_len += 1;
                return;
            }
        }
        self.spill.push(item);
    }

    fn pop(&mut self) -> Option<T> {
        if let Some(item) = self.spill.pop() {
            return Some(item);
        }
        self.inline_len = self.inline_len.checked_sub(1)?;
        self.inline.get_mut(self.inline_len).and_then(Option::take)
    }
}

/// Splits the first level off a topic: `("a", Some("b/c"))` for `"a/b/c"`,
/// `("c", None)` for `"c"`.
#[inline]
fn split_level(topic: &str) -> (&str, Option<&str>) {
    match topic.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (topic, None),
    }
}

/// Maps topic filters to subscribers, and topic names to every matching
/// subscription.
///
/// `K` identifies a subscriber (a client id, a session handle); `V` is what the
/// subscription carries (typically the granted QoS). One subscriber has at most one
/// value per filter: inserting the same (filter, key) again replaces the value, as a
/// repeated SUBSCRIBE replaces the subscription [MQTT-3.8.4-3].
///
/// Lookups report every matching (subscriber, value, filter), including several
/// filters of the same subscriber, so the caller can apply the overlapping
/// subscription rule (deliver once, at the highest granted QoS [MQTT-3.3.5-1]).
///
/// Removing the last subscription on a branch frees the branch: after every
/// subscription is removed, [`node_count`](Self::node_count) is back to 1.
///
/// ```
/// use midge_topic::{SubscriptionIndex, TopicFilter};
/// let mut index = SubscriptionIndex::new();
/// let f = |s: &str| TopicFilter::new(s).unwrap();
/// index.insert(&f("sport/#"), "alice", 1u8);
/// index.insert(&f("sport/+/player1"), "bob", 0u8);
/// index.insert(&f("#"), "carol", 2u8);
///
/// let mut hits = index.matches("sport/tennis/player1");
/// hits.sort();
/// assert_eq!(hits.len(), 3);
/// // `#` does not see `$` topics [MQTT-4.7.2-1].
/// assert!(index.matches("$SYS/uptime").is_empty());
/// ```
pub struct SubscriptionIndex<K, V> {
    root: Node<K, V>,
    /// Number of (filter, key) subscriptions.
    len: usize,
    /// Number of trie nodes, root included.
    nodes: usize,
}

impl<K, V> Default for SubscriptionIndex<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for SubscriptionIndex<K, V> {
    /// Prints the sizes only: the trie may be too deep to print recursively.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionIndex")
            .field("len", &self.len)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl<K, V> SubscriptionIndex<K, V> {
    /// An empty index (one node, the root).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            root: Node::new(),
            len: 0,
            nodes: 1,
        }
    }

    /// Number of (filter, subscriber) subscriptions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no subscriptions.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of trie nodes, the root included; 1 for an empty index. Memory use is
    /// proportional to it, which makes it the figure to watch for leaks.
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// Calls `f` with (subscriber, value, filter) for every subscription whose filter
    /// matches the topic name `topic` (rules of [`matches_str`](crate::matches_str)).
    ///
    /// `topic` should be a valid name ([`validate_topic_name`](crate::validate_topic_name));
    /// other strings give unspecified answers but never panic. The order of the calls
    /// is unspecified. No allocation unless more than [`INLINE_BRANCHES`] branches
    /// are pending at once; no recursion.
    pub fn for_each_match<'a>(
        &'a self,
        topic: &str,
        mut f: impl FnMut(&'a K, &'a V, &'a TopicFilter),
    ) {
        let mut emit = |leaf: &'a Leaf<K, V>| {
            for (key, value) in leaf.subs.iter() {
                f(key, value, &leaf.filter);
            }
        };
        let mut stack: WorkStack<(&'a Node<K, V>, Option<&str>)> = WorkStack::new();

        // The first level, where [MQTT-4.7.2-1] applies: filters starting with a
        // wildcard do not match names starting with `$`.
        let root = &self.root;
        let dollar = topic.starts_with('$');
        let (level, rest) = split_level(topic);
        if !dollar {
            if let Some(leaf) = &root.hash {
                emit(leaf);
            }
            if let Some(plus) = root.plus.as_deref() {
                stack.push((plus, rest));
            }
        }
        if let Some(child) = root.literal.get(level) {
            stack.push((child, rest));
        }

        while let Some((node, rest)) = stack.pop() {
            // `#` below this node matches this level and all below it, including
            // the case where the name has no more levels (the parent) [MQTT-4.7.1-2].
            if let Some(leaf) = &node.hash {
                emit(leaf);
            }
            match rest {
                None => {
                    if let Some(leaf) = &node.exact {
                        emit(leaf);
                    }
                }
                Some(rest) => {
                    let (level, rest) = split_level(rest);
                    // `+` takes exactly one level, empty or not [MQTT-4.7.1-3].
                    if let Some(plus) = node.plus.as_deref() {
                        stack.push((plus, rest));
                    }
                    if let Some(child) = node.literal.get(level) {
                        stack.push((child, rest));
                    }
                }
            }
        }
    }

    /// Every subscription matching `topic`, as (subscriber, value, filter), in
    /// unspecified order. Allocates the result; see [`for_each_match`](Self::for_each_match).
    #[must_use]
    pub fn matches(&self, topic: &str) -> Vec<(&K, &V, &TopicFilter)> {
        let mut out = Vec::new();
        self.for_each_match(topic, |k, v, f| out.push((k, v, f)));
        out
    }

    /// True when at least one subscription matches `topic`.
    #[must_use]
    pub fn has_match(&self, topic: &str) -> bool {
        let mut found = false;
        self.for_each_match(topic, |_, _, _| found = true);
        found
    }

    /// Calls `f` for every subscription in the index, in unspecified order.
    pub fn for_each_subscription<'a>(&'a self, mut f: impl FnMut(&'a K, &'a V, &'a TopicFilter)) {
        let mut pending: Vec<&'a Node<K, V>> = Vec::new();
        pending.push(&self.root);
        while let Some(node) = pending.pop() {
            for leaf in node.leaves() {
                for (key, value) in leaf.subs.iter() {
                    f(key, value, &leaf.filter);
                }
            }
            pending.extend(node.literal.values());
            pending.extend(node.plus.as_deref());
        }
    }

    /// The node for the path of `filter` (without a trailing `#`), and whether the
    /// filter ends in `#`.
    fn find(&self, filter: &TopicFilter) -> Option<(&Node<K, V>, bool)> {
        let mut node = &self.root;
        for level in filter.levels() {
            if level == "#" {
                return Some((node, true));
            }
            node = node.child(level)?;
        }
        Some((node, false))
    }
}

impl<K: Ord, V> SubscriptionIndex<K, V> {
    /// Subscribes `key` to `filter` with `value`. Returns the previous value when
    /// `key` was already subscribed to exactly this filter (the subscription is
    /// replaced [MQTT-3.8.4-3]), `None` when the subscription is new.
    pub fn insert(&mut self, filter: &TopicFilter, key: K, value: V) -> Option<V> {
        let mut created = 0usize;
        let mut node = &mut self.root;
        let mut hash = false;
        for level in filter.levels() {
            node = match level {
                // A valid filter has `#` only as its last level [MQTT-4.7.1-2].
                "#" => {
                    hash = true;
                    break;
                }
                "+" => node.plus.get_or_insert_with(|| {
                    created += 1;
                    Box::new(Node::new())
                }),
                _ => {
                    if !node.literal.contains_key(level) {
                        node.literal.insert(Box::from(level), Node::new());
                        created += 1;
                    }
                    // Always `Some`: the child was found or inserted just above.
                    node.literal.get_mut(level)?
                }
            };
        }
        let slot = if hash {
            &mut node.hash
        } else {
            &mut node.exact
        };
        let leaf = slot.get_or_insert_with(|| {
            Box::new(Leaf {
                filter: filter.clone(),
                subs: SmallMap::new(),
            })
        });
        let old = leaf.subs.insert(key, value);
        self.nodes = self.nodes.saturating_add(created);
        if old.is_none() {
            self.len = self.len.saturating_add(1);
        }
        old
    }

    /// The value of `key`'s subscription to exactly `filter` (no wildcard matching).
    #[must_use]
    pub fn get(&self, filter: &TopicFilter, key: &K) -> Option<&V> {
        let (node, hash) = self.find(filter)?;
        let leaf = if hash { &node.hash } else { &node.exact };
        leaf.as_deref()?.subs.get(key)
    }

    /// True when `key` is subscribed to exactly `filter`.
    #[must_use]
    pub fn contains(&self, filter: &TopicFilter, key: &K) -> bool {
        self.get(filter, key).is_some()
    }

    /// Unsubscribes `key` from exactly `filter` and returns the removed value, or
    /// `None` when there was no such subscription. Nodes left without subscriptions
    /// or children are freed.
    pub fn remove(&mut self, filter: &TopicFilter, key: &K) -> Option<V> {
        let (value, leaf_emptied) = {
            let mut node = &mut self.root;
            let mut hash = false;
            for level in filter.levels() {
                if level == "#" {
                    hash = true;
                    break;
                }
                node = node.child_mut(level)?;
            }
            let slot = if hash {
                &mut node.hash
            } else {
                &mut node.exact
            };
            let leaf = slot.as_mut()?;
            let value = leaf.subs.remove(key)?;
            let emptied = leaf.subs.is_empty();
            if emptied {
                *slot = None;
            }
            (value, emptied)
        };
        self.len = self.len.saturating_sub(1);
        if leaf_emptied {
            self.prune(filter);
        }
        Some(value)
    }

    /// Frees the nodes on `filter`'s path that hold nothing any more: the longest
    /// chain at the bottom of the path whose nodes have no subscriptions and no
    /// children besides the next node of the chain.
    fn prune(&mut self, filter: &TopicFilter) {
        // Read-only pass: find the depth where the removable chain starts.
        let mut levels = filter.levels().peekable();
        let mut node = &self.root;
        let mut depth = 0usize;
        let mut chain_top: Option<usize> = None;
        while let Some(level) = levels.next() {
            if level == "#" {
                break;
            }
            let Some(child) = node.child(level) else {
                return;
            };
            depth += 1;
            let last = matches!(levels.peek(), None | Some(&"#"));
            let allowed_children = if last { 0 } else { 1 };
            if !child.has_subscriptions() && child.child_count() == allowed_children {
                chain_top.get_or_insert(depth);
            } else {
                chain_top = None;
            }
            node = child;
        }
        let Some(top) = chain_top else {
            return;
        };
        let freed = depth.saturating_sub(top).saturating_add(1);

        // Mutable pass: detach the chain from its parent (at depth `top - 1`).
        let mut node = &mut self.root;
        for (index, level) in filter.levels().enumerate() {
            if index.saturating_add(1) == top {
                let detached = if level == "+" {
                    node.plus.take().is_some()
                } else {
                    node.literal.remove(level).is_some()
                };
                if detached {
                    self.nodes = self.nodes.saturating_sub(freed);
                }
                return;
            }
            let Some(child) = node.child_mut(level) else {
                return;
            };
            node = child;
        }
    }

    /// Removes every subscription of `key` (for example when a clean session ends)
    /// and returns them as (filter, value), in unspecified order.
    ///
    /// Walks the whole index: O(number of nodes). A broker that tracks each
    /// session's filters can call [`remove`](Self::remove) per filter instead.
    pub fn remove_all(&mut self, key: &K) -> Vec<(TopicFilter, V)> {
        let mut filters = Vec::new();
        self.for_each_subscription(|k, _, f| {
            if k == key {
                filters.push(f.clone());
            }
        });
        let mut removed = Vec::with_capacity(filters.len());
        for filter in filters {
            if let Some(value) = self.remove(&filter, key) {
                removed.push((filter, value));
            }
        }
        removed
    }
}
