//! One worker pool for every "do this on each host, at most N at a time": the site operations,
//! the transport's connection fan-out and the playbook engine's tasks. A panic in one item is
//! caught and reported for that item; the others finish.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// An item whose work panicked, with the panic's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked(pub String);

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "internal error (panic: {})", self.0)
    }
}

impl std::error::Error for Panicked {}

/// An item and, once its work ran, what it returned.
type Cell<T, R> = Mutex<(T, Option<Result<R, Panicked>>)>;

thread_local! {
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True on a fan-out worker thread: a panic there is caught and reported for its item, so a
/// process-wide panic hook should not end the process.
pub fn catching() -> bool {
    CATCHING.with(|c| c.get())
}

/// Run `f` on every item, at most `forks` at a time (at least one), and hand each item back
/// with its result, in the order of `items`.
pub fn fanout<T, R, F>(items: Vec<T>, forks: usize, f: F) -> Vec<(T, Result<R, Panicked>)>
where
    T: Send,
    R: Send,
    F: Fn(&mut T) -> R + Sync,
{
    let cells: Vec<Cell<T, R>> = items.into_iter().map(|t| Mutex::new((t, None))).collect();
    let next = AtomicUsize::new(0);
    let workers = forks.max(1).min(cells.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                CATCHING.with(|c| c.set(true));
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(cell) = cells.get(i) else { break };
                let mut g = cell.lock().unwrap_or_else(|p| p.into_inner());
                let (item, out) = &mut *g;
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(item)));
                *out = Some(r.map_err(|p| Panicked(panic_message(p.as_ref()))));
            });
        }
    });
    cells
        .into_iter()
        .map(|c| {
            let (t, r) = c.into_inner().unwrap_or_else(|p| p.into_inner());
            (t, r.unwrap_or_else(|| Err(Panicked("not run".into()))))
        })
        .collect()
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown payload".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn results_come_back_in_order_and_at_most_forks_run_at_once() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = fanout((0..12).collect(), 3, |i: &mut i32| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            running.fetch_sub(1, Ordering::SeqCst);
            *i * 2
        });
        let got: Vec<(i32, i32)> = out.into_iter().map(|(i, r)| (i, r.unwrap())).collect();
        assert_eq!(got, (0..12).map(|i| (i, i * 2)).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(peak.load(Ordering::SeqCst) >= 2, "work ran in parallel");
    }

    #[test]
    fn a_panic_is_reported_for_its_item_only() {
        let out = fanout(vec![1, 2, 3], 2, |i: &mut i32| {
            if *i == 2 {
                panic!("boom on {i}");
            }
            *i
        });
        assert_eq!(out[0].1, Ok(1));
        assert_eq!(out[1].1, Err(Panicked("boom on 2".into())));
        assert_eq!(out[2].1, Ok(3));
    }

    #[test]
    fn no_items_no_workers() {
        let out: Vec<(u8, Result<(), Panicked>)> = fanout(vec![], 4, |_| ());
        assert!(out.is_empty());
    }
}
