//! Attaching many functions with one call, where one bad function must not cost the rest:
//! a batch the kernel rejects is split in halves and each half tried again, so a function
//! the kernel will not take ends up alone in a batch of one and is skipped, with the
//! kernel's reason, after about 2·log2(n) extra calls.

/// Why the kernel rejected a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BatchError {
    pub errno: i32,
    pub message: String,
}

impl BatchError {
    pub(super) fn last_os_error(what: &str) -> Self {
        let err = std::io::Error::last_os_error();
        BatchError {
            errno: err.raw_os_error().unwrap_or(0),
            message: format!("{what}: {err}"),
        }
    }

    /// Whether the error is about the mechanism rather than about the batch's functions:
    /// splitting would only repeat it for every function.
    fn refuses_the_mechanism(&self) -> bool {
        // ENOTSUPP (524) is the kernel-internal twin of EOPNOTSUPP some paths leak.
        const ENOTSUPP: i32 = 524;
        matches!(
            self.errno,
            libc::EOPNOTSUPP | ENOTSUPP | libc::EPERM | libc::ENOSYS
        )
    }
}

/// What attaching a list of items in batches gave.
#[derive(Debug)]
pub(super) struct Batched<L> {
    /// One per accepted batch; each holds its functions attached while it lives.
    pub links: Vec<L>,
    pub attached: Vec<usize>,
    /// Items no batch could take, with the kernel's reason.
    pub refused: Vec<(usize, String)>,
}

/// Attaches `items` with `attach`, splitting rejected batches down to single items.
///
/// Fails only when the very first call is rejected for a reason that is about the
/// mechanism (see [`BatchError::refuses_the_mechanism`]): the kernel cannot do it at all.
pub(super) fn attach_in_batches<L>(
    items: &[usize],
    attach: &mut dyn FnMut(&[usize]) -> Result<L, BatchError>,
) -> Result<Batched<L>, BatchError> {
    let mut batched = Batched {
        links: Vec::new(),
        attached: Vec::new(),
        refused: Vec::new(),
    };
    if items.is_empty() {
        return Ok(batched);
    }
    match attach(items) {
        Ok(link) => {
            batched.links.push(link);
            batched.attached.extend_from_slice(items);
        }
        Err(err) if err.refuses_the_mechanism() => return Err(err),
        Err(err) => split(items, err, attach, &mut batched),
    }
    Ok(batched)
}

fn split<L>(
    items: &[usize],
    err: BatchError,
    attach: &mut dyn FnMut(&[usize]) -> Result<L, BatchError>,
    batched: &mut Batched<L>,
) {
    if let [item] = items {
        batched.refused.push((*item, err.message));
        return;
    }
    let (left, right) = items.split_at(items.len() / 2);
    for half in [left, right] {
        match attach(half) {
            Ok(link) => {
                batched.links.push(link);
                batched.attached.extend_from_slice(half);
            }
            Err(err) => split(half, err, attach, batched),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel that rejects any batch holding one of `bad`, with EINVAL.
    fn rejecting(bad: &[usize]) -> impl FnMut(&[usize]) -> Result<Vec<usize>, BatchError> + '_ {
        move |batch| match batch.iter().find(|item| bad.contains(item)) {
            Some(item) => Err(BatchError {
                errno: libc::EINVAL,
                message: format!("{item} is bad"),
            }),
            None => Ok(batch.to_vec()),
        }
    }

    #[test]
    fn a_clean_batch_is_one_link() {
        let items: Vec<usize> = (0..1000).collect();
        let batched = attach_in_batches(&items, &mut rejecting(&[])).unwrap();
        assert_eq!(batched.links.len(), 1);
        assert_eq!(batched.attached, items);
        assert!(batched.refused.is_empty());
    }

    #[test]
    fn one_bad_item_costs_only_itself() {
        let items: Vec<usize> = (0..1000).collect();
        let mut calls = 0;
        let mut kernel = rejecting(&[637]);
        let mut counting = |batch: &[usize]| {
            calls += 1;
            kernel(batch)
        };
        let batched = attach_in_batches(&items, &mut counting).unwrap();
        assert_eq!(batched.refused, vec![(637, "637 is bad".to_string())]);
        let mut attached = batched.attached.clone();
        attached.sort_unstable();
        assert_eq!(
            attached,
            items
                .iter()
                .copied()
                .filter(|&i| i != 637)
                .collect::<Vec<_>>()
        );
        let linked: usize = batched.links.iter().map(Vec::len).sum();
        assert_eq!(linked, 999);
        assert!(calls <= 1 + 2 * 10, "{calls} calls");
    }

    #[test]
    fn every_bad_item_is_refused_with_its_own_reason() {
        let items = [3, 1, 4, 5, 9, 2, 6];
        let batched = attach_in_batches(&items, &mut rejecting(&[1, 9, 6])).unwrap();
        let mut refused = batched.refused.clone();
        refused.sort();
        assert_eq!(
            refused,
            [(1, "1 is bad"), (6, "6 is bad"), (9, "9 is bad")]
                .map(|(item, why)| (item, why.to_string()))
        );
        let mut attached = batched.attached;
        attached.sort_unstable();
        assert_eq!(attached, [2, 3, 4, 5]);
    }

    #[test]
    fn an_unsupported_mechanism_fails_at_once() {
        let mut calls = 0;
        let mut unsupported = |_: &[usize]| -> Result<(), BatchError> {
            calls += 1;
            Err(BatchError {
                errno: libc::EOPNOTSUPP,
                message: "no fprobe".into(),
            })
        };
        let err = attach_in_batches(&[1, 2, 3, 4], &mut unsupported).unwrap_err();
        assert_eq!(err.message, "no fprobe");
        assert_eq!(calls, 1);
    }

    #[test]
    fn nothing_to_attach_makes_no_call() {
        let mut never = |_: &[usize]| -> Result<(), BatchError> { panic!("called") };
        let batched = attach_in_batches(&[], &mut never).unwrap();
        assert!(batched.links.is_empty() && batched.refused.is_empty());
    }
}
