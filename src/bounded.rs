//! Fixed-capacity containers (no allocation): the core's queues.
//!
//! Both keep their items in `N` slots of `Option<T>` held by a storage `S`:
//! an inline array ([`Inline`], for small lists and locals) or a table the
//! platform allocated ([`crate::Platform::Slots`], for the log's big lists,
//! so that a `Zil` is small and never built on a kernel stack). The
//! capacity stays the compile-time `N`: index arithmetic is by a constant.
//! Pushing past the capacity hands the item back instead of growing.

use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};

/// Inline storage of `N` slots.
#[derive(Debug)]
pub(crate) struct Inline<T, const N: usize>([Option<T>; N]);

impl<T, const N: usize> Inline<T, N> {
    /// `N` empty slots. A constant expression, so the compiler fills the
    /// final place directly instead of building the array and copying it.
    pub(crate) const fn new() -> Self {
        Self([const { None }; N])
    }
}

impl<T, const N: usize> Deref for Inline<T, N> {
    type Target = [Option<T>];
    fn deref(&self) -> &[Option<T>] {
        &self.0
    }
}

impl<T, const N: usize> DerefMut for Inline<T, N> {
    fn deref_mut(&mut self) -> &mut [Option<T>] {
        &mut self.0
    }
}

/// Whether `slots` can back a container of capacity `N`: exactly `N`
/// slots, all empty.
pub(crate) fn fits<T, const N: usize>(slots: &[Option<T>]) -> bool {
    slots.len() == N && slots.iter().all(Option::is_none)
}

/// A FIFO ring of at most `N` items, kept in `S`.
#[derive(Debug)]
pub(crate) struct Ring<S, const N: usize> {
    slots: S,
    head: usize,
    len: usize,
}

impl<T, S: DerefMut<Target = [Option<T>]>, const N: usize> Ring<S, N> {
    /// An empty ring over `slots`, which must [`fit`](fits) it.
    pub(crate) fn with_slots(slots: S) -> Self {
        assert!(fits::<T, N>(&slots), "ring storage is not N empty slots");
        Self {
            slots,
            head: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == N
    }

    /// Append at the tail; gives the item back when full.
    pub(crate) fn push_back(&mut self, item: T) -> Result<(), T> {
        if self.len == N {
            return Err(item);
        }
        let i = (self.head + self.len) % N;
        debug_assert!(self.slots[i].is_none());
        self.slots[i] = Some(item);
        self.len += 1;
        Ok(())
    }

    /// Put an item back at the head (it was taken with `pop_front`).
    pub(crate) fn push_front(&mut self, item: T) -> Result<(), T> {
        if self.len == N {
            return Err(item);
        }
        self.head = (self.head + N - 1) % N;
        debug_assert!(self.slots[self.head].is_none());
        self.slots[self.head] = Some(item);
        self.len += 1;
        Ok(())
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.slots[self.head].take();
        debug_assert!(item.is_some());
        self.head = (self.head + 1) % N;
        self.len -= 1;
        item
    }

    /// The `i`-th item from the head.
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        self.slots[(self.head + i) % N].as_ref()
    }

    /// The `i`-th item from the head, mutably.
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        self.slots[(self.head + i) % N].as_mut()
    }

    pub(crate) fn front(&self) -> Option<&T> {
        self.get(0)
    }

    pub(crate) fn iter<'a>(&'a self) -> impl Iterator<Item = &'a T>
    where
        T: 'a,
    {
        (0..self.len).filter_map(move |i| self.get(i))
    }
}

impl<T, const N: usize> Ring<Inline<T, N>, N> {
    /// An empty ring with inline storage.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::with_slots(Inline::new())
    }
}

/// A stack-like vector of at most `N` items, kept in `S`.
#[derive(Debug)]
pub(crate) struct BoundedVec<S, const N: usize> {
    slots: S,
    len: usize,
}

impl<T, const N: usize> BoundedVec<Inline<T, N>, N> {
    /// An empty vector with inline storage.
    pub(crate) const fn new() -> Self {
        Self {
            slots: Inline::new(),
            len: 0,
        }
    }
}

impl<T, S: DerefMut<Target = [Option<T>]>, const N: usize> BoundedVec<S, N> {
    /// An empty vector over `slots`, which must [`fit`](fits) it.
    pub(crate) fn with_slots(slots: S) -> Self {
        assert!(fits::<T, N>(&slots), "vector storage is not N empty slots");
        Self { slots, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == N
    }

    pub(crate) fn push(&mut self, item: T) -> Result<(), T> {
        if self.len == N {
            return Err(item);
        }
        self.slots[self.len] = Some(item);
        self.len += 1;
        Ok(())
    }

    /// Take every item out, in push order, leaving the vector empty; items
    /// the caller does not iterate to are dropped with the iterator.
    pub(crate) fn drain(&mut self) -> Drain<'_, T> {
        let n = core::mem::replace(&mut self.len, 0);
        Drain {
            slots: self.slots[..n].iter_mut(),
        }
    }
}

/// The iterator of [`BoundedVec::drain`].
#[derive(Debug)]
pub(crate) struct Drain<'a, T> {
    slots: core::slice::IterMut<'a, Option<T>>,
}

impl<T> Iterator for Drain<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.slots.by_ref().find_map(Option::take)
    }
}

impl<T> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        // Slots past the vector's (now zero) length must be empty.
        self.slots.by_ref().for_each(|s| drop(s.take()));
    }
}

/// Inline storage whose own drop glue does not visit its slots (dropping
/// an array of 128 `Option`s tests all 128, even when one was used: about
/// 640 instructions per lone commit). Only [`DrainOnDrop`] uses it; it
/// empties the slots it filled before the storage goes.
#[derive(Debug)]
pub(crate) struct Undropped<T, const N: usize>(ManuallyDrop<[Option<T>; N]>);

impl<T, const N: usize> Deref for Undropped<T, N> {
    type Target = [Option<T>];
    fn deref(&self) -> &[Option<T>] {
        &self.0[..]
    }
}

impl<T, const N: usize> DerefMut for Undropped<T, N> {
    fn deref_mut(&mut self) -> &mut [Option<T>] {
        &mut self.0[..]
    }
}

/// A [`BoundedVec`] over inline storage that drops only the items it holds
/// (its first `len` slots; every later slot is empty by construction).
#[derive(Debug)]
pub(crate) struct DrainOnDrop<T, const N: usize>(BoundedVec<Undropped<T, N>, N>);

impl<T, const N: usize> DrainOnDrop<T, N> {
    /// An empty vector. A constant expression, so the compiler fills the
    /// final place directly.
    pub(crate) const fn new() -> Self {
        Self(BoundedVec {
            slots: Undropped(ManuallyDrop::new([const { None }; N])),
            len: 0,
        })
    }
}

impl<T, const N: usize> Deref for DrainOnDrop<T, N> {
    type Target = BoundedVec<Undropped<T, N>, N>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T, const N: usize> DerefMut for DrainOnDrop<T, N> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<T, const N: usize> Drop for DrainOnDrop<T, N> {
    fn drop(&mut self) {
        self.0.drain().for_each(drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_fifo_and_bounded() {
        let mut r: Ring<Inline<u32, 3>, 3> = Ring::new();
        assert_eq!(r.len(), 0);
        for i in 0..3 {
            r.push_back(i).unwrap();
        }
        assert_eq!(r.push_back(9), Err(9));
        assert_eq!(r.pop_front(), Some(0));
        r.push_back(3).unwrap();
        assert_eq!(r.iter().copied().collect::<std::vec::Vec<_>>(), [1, 2, 3]);
        assert_eq!(r.pop_front(), Some(1));
        r.push_front(7).unwrap();
        assert_eq!(r.front(), Some(&7));
        assert_eq!(r.len(), 3);
        assert!(r.is_full());
    }

    #[test]
    fn drain_on_drop_drops_what_it_holds() {
        let live = std::rc::Rc::new(());
        {
            let mut v: DrainOnDrop<std::rc::Rc<()>, 4> = DrainOnDrop::new();
            v.push(live.clone()).unwrap();
            v.push(live.clone()).unwrap();
            assert_eq!(std::rc::Rc::strong_count(&live), 3);
            let first = v.drain().next();
            assert!(first.is_some());
            drop(first);
            // drain() takes every item even if not iterated to the end.
            v.push(live.clone()).unwrap();
            assert_eq!(v.len(), 1);
        }
        assert_eq!(std::rc::Rc::strong_count(&live), 1, "nothing leaked");
    }

    #[test]
    fn bounded_vec_drains_in_order() {
        let mut v: BoundedVec<Inline<u8, 2>, 2> = BoundedVec::new();
        v.push(1).unwrap();
        v.push(2).unwrap();
        assert_eq!(v.push(3), Err(3));
        assert_eq!(v.drain().collect::<std::vec::Vec<_>>(), [1, 2]);
        assert!(v.is_empty());
    }

    #[test]
    fn storage_must_be_n_empty_slots() {
        let ok: std::vec::Vec<Option<u8>> = std::vec![None; 4];
        assert!(fits::<u8, 4>(&ok));
        assert!(!fits::<u8, 3>(&ok), "wrong length");
        let used = std::vec![None, Some(1u8), None, None];
        assert!(!fits::<u8, 4>(&used), "a slot already holds an item");
        let mut r: Ring<std::vec::Vec<Option<u8>>, 4> = Ring::with_slots(ok);
        for i in 0..4 {
            r.push_back(i).unwrap();
        }
        assert_eq!(r.push_back(9), Err(9));
        assert_eq!(r.pop_front(), Some(0));
    }
}
