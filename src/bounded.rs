//! Fixed-capacity containers (no allocation): the core's queues.
//!
//! Both are arrays of `Option<T>` sized at compile time; pushing past the
//! capacity hands the item back to the caller instead of growing.

/// A FIFO ring of at most `N` items.
#[derive(Debug)]
pub(crate) struct Ring<T, const N: usize> {
    slots: [Option<T>; N],
    head: usize,
    len: usize,
}

impl<T, const N: usize> Ring<T, N> {
    pub(crate) fn new() -> Self {
        Self {
            slots: core::array::from_fn(|_| None),
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

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        (0..self.len).filter_map(move |i| self.get(i))
    }
}

/// A stack-like vector of at most `N` items.
#[derive(Debug)]
pub(crate) struct BoundedVec<T, const N: usize> {
    slots: [Option<T>; N],
    len: usize,
}

impl<T, const N: usize> BoundedVec<T, N> {
    pub(crate) fn new() -> Self {
        Self {
            slots: core::array::from_fn(|_| None),
            len: 0,
        }
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

    /// Take every item out, in push order, leaving the vector empty.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        let n = core::mem::replace(&mut self.len, 0);
        self.slots[..n].iter_mut().filter_map(Option::take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_fifo_and_bounded() {
        let mut r: Ring<u32, 3> = Ring::new();
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
    fn bounded_vec_drains_in_order() {
        let mut v: BoundedVec<u8, 2> = BoundedVec::new();
        v.push(1).unwrap();
        v.push(2).unwrap();
        assert_eq!(v.push(3), Err(3));
        assert_eq!(v.drain().collect::<std::vec::Vec<_>>(), [1, 2]);
        assert!(v.is_empty());
    }
}
