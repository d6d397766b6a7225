//! Which addresses a server showing personal data may bind.

use std::net::{IpAddr, SocketAddr};

/// The address is neither loopback nor private, and serving there was not allowed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} is not a loopback or private address; this server shows personal data, so serve it on a public address only when explicitly allowed"
)]
pub struct PublicAddress(pub SocketAddr);

/// Refuses to serve on an address outside loopback and private networks unless
/// `allow_public`. The unspecified address (all interfaces) counts as public.
pub fn check_bind_address(addr: SocketAddr, allow_public: bool) -> Result<(), PublicAddress> {
    let private = match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        IpAddr::V6(ip) => {
            ip.is_loopback()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    if private || allow_public {
        Ok(())
    } else {
        Err(PublicAddress(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_need_explicit_permission() {
        let ok = [
            "127.0.0.1:80",
            "10.1.2.3:80",
            "192.168.1.5:80",
            "[::1]:80",
            "[fd00::1]:80",
        ];
        for a in ok {
            assert!(
                check_bind_address(a.parse().expect("addr"), false).is_ok(),
                "{a}"
            );
        }
        for a in ["0.0.0.0:80", "8.8.8.8:80", "[::]:80", "[2001:db8::1]:80"] {
            let addr = a.parse().expect("addr");
            assert!(check_bind_address(addr, false).is_err(), "{a}");
            assert!(check_bind_address(addr, true).is_ok(), "{a}");
        }
    }
}
