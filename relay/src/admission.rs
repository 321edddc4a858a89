//! Open connections per IP address, bounded before the TLS handshake costs the relay anything.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open connections by address.
#[derive(Clone)]
pub struct Admission {
    max_per_address: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection; dropping it frees its place.
pub struct AdmissionTicket {
    addr: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Admission {
    /// At most `max_per_address` open connections from one address.
    pub fn new(max_per_address: usize) -> Self {
        Self {
            max_per_address,
            open: Arc::default(),
        }
    }

    /// A place for a connection from `addr`, or `None` if that address has too many.
    pub fn admit(&self, addr: IpAddr) -> Option<AdmissionTicket> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
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
        let a = Admission::new(2);
        let me: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t1 = a.admit(me).unwrap();
        let _t2 = a.admit(me).unwrap();
        assert!(a.admit(me).is_none());
        assert!(a.admit(other).is_some());
        drop(t1);
        assert!(a.admit(me).is_some());
    }
}
