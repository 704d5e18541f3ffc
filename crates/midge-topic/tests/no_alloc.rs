//! The lookup path does not allocate: proven with a counting global allocator.
//!
//! This test binary (not the library, which forbids `unsafe`) installs an allocator
//! that forwards to the system allocator and counts calls made by the current
//! thread while counting is switched on.
// Tests may unwrap and panic: a panic is how they fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use midge_topic::{SubscriptionIndex, TopicFilter};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping touches
// only const-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn for_each_match_and_validation_do_not_allocate() {
    let mut index = SubscriptionIndex::new();
    let filters = [
        "#",
        "+/+/+/+/+",
        "sport/#",
        "sport/tennis/+/score/#",
        "sport/+/player1/+/wimbledon",
        "$SYS/#",
        "sport/tennis/player1/score/wimbledon",
        "+/tennis/#",
        "//+",
    ];
    for (i, filter) in filters.iter().enumerate() {
        index.insert(&TopicFilter::new(*filter).unwrap(), i, i);
    }
    let mut hits = 0usize;
    let allocations = allocations_during(|| {
        for topic in [
            "sport/tennis/player1/score/wimbledon",
            "$SYS/uptime",
            "//x",
            "a",
        ] {
            midge_topic::validate_topic_name(topic).unwrap();
            index.for_each_match(topic, |_, _, _| hits += 1);
        }
        midge_topic::validate_topic_filter("sport/+/player1/#").unwrap();
        assert!(midge_topic::matches_str(
            "sport/+/player1/#",
            "sport/x/player1"
        ));
    });
    assert_eq!(hits, 7 + 1 + 2 + 1);
    assert_eq!(allocations, 0);
}
