//! Open connections per network address and in all, bounded before the TLS handshake costs the
//! relay anything.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub(crate) use protocol::sender::address_key;

/// Counts open connections by address and in all.
#[derive(Clone)]
pub(crate) struct Admission {
    max_per_address: usize,
    max_total: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection; dropping it frees its place.
pub(crate) struct AdmissionTicket {
    addr: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Admission {
    /// At most `max_per_address` open connections from one address, `max_total` in all.
    pub(crate) fn new(max_per_address: usize, max_total: usize) -> Self {
        Self {
            max_per_address,
            max_total,
            open: Arc::default(),
        }
    }

    /// A place for a connection from `addr`, or `None` if that address (or the relay) has too
    /// many.
    pub(crate) fn admit(&self, addr: IpAddr) -> Option<AdmissionTicket> {
        let addr = address_key(addr);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.values().sum::<usize>() >= self.max_total {
            return None;
        }
        let n = open.entry(addr).or_default();
        if *n >= self.max_per_address {
            return None;
        }
        *n += 1;
        Some(AdmissionTicket {
            addr,
            open: self.open.clone(),
        })
    }
}

/// A QUIC connection attempt, as quinn (signaling) and noq (address discovery) hand it over.
pub(crate) trait ConnectionAttempt: Sized {
    /// Where it came from.
    fn remote(&self) -> std::net::SocketAddr;
    /// Whether a Retry already proved the source address.
    fn validated(&self) -> bool;
    /// Answers with a Retry (or, where none may be sent, not at all).
    fn retry_or_ignore(self);
    /// Refuses it.
    fn refuse(self);
}

macro_rules! connection_attempt {
    ($incoming:ty) => {
        impl ConnectionAttempt for $incoming {
            fn remote(&self) -> std::net::SocketAddr {
                self.remote_address()
            }
            fn validated(&self) -> bool {
                self.remote_address_validated()
            }
            fn retry_or_ignore(self) {
                if self.may_retry() {
                    let _ = self.retry();
                } else {
                    self.ignore();
                }
            }
            fn refuse(self) {
                <$incoming>::refuse(self)
            }
        }
    };
}
connection_attempt!(quinn::Incoming);
connection_attempt!(noq::Incoming);

impl Admission {
    /// Lets a QUIC connection attempt in, with the place it holds, or answers it: a Retry
    /// proves the source address first, so a forged address never gets a handshake and never
    /// uses up the places of the school whose address it forged (it costs a real client one
    /// round trip); then the attempt counts like any connection, and is refused over the bound.
    pub(crate) fn admit_quic<A: ConnectionAttempt>(
        &self,
        attempt: A,
    ) -> Option<(A, AdmissionTicket)> {
        if !attempt.validated() {
            attempt.retry_or_ignore();
            return None;
        }
        match self.admit(attempt.remote().ip()) {
            Some(place) => Some((attempt, place)),
            None => {
                tracing::debug!(remote = %attempt.remote(), "too many connections from this address");
                crate::metrics::metrics().throttle(crate::metrics::Throttle::Connection);
                attempt.refuse();
                None
            }
        }
    }
}

impl Drop for AdmissionTicket {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_per_address_and_freed_on_drop() {
        let a = Admission::new(2, 100);
        let me: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t1 = a.admit(me).unwrap();
        let _t2 = a.admit(me).unwrap();
        assert!(a.admit(me).is_none());
        assert!(a.admit(other).is_some());
        drop(t1);
        assert!(a.admit(me).is_some());
    }

    #[test]
    fn ipv6_counts_by_64_and_the_total_is_bounded() {
        let a = Admission::new(2, 3);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let _t = (a.admit(one).unwrap(), a.admit(two).unwrap());
        assert!(
            a.admit("2001:db8:1:2::77".parse().unwrap()).is_none(),
            "same /64"
        );
        let _u = a.admit("192.0.2.1".parse().unwrap()).unwrap();
        assert!(
            a.admit("192.0.2.2".parse().unwrap()).is_none(),
            "total reached"
        );
        assert_eq!(
            address_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
