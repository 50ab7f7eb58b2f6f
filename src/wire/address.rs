//! Addresses that come from somewhere else (Consul, a peer, a static list): checked before anything uses them.

/// True when `host` is an IP literal (IPv6 with or without brackets) or a DNS name: labels of letters, digits
/// and `-`, joined by dots, at most 253 characters. Anything else (`127.0.0.1;touch x`, a path, a space, a
/// user) is no host, and a value from discovery that is none is refused rather than used.
pub fn is_host(host: &str) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `host:port` with a valid host ([`is_host`]) and a port number.
pub fn is_host_port(address: &str) -> bool {
    address.rsplit_once(':').is_some_and(|(host, port)| is_host(host) && port.parse::<u16>().is_ok())
}

/// The port of `host:port` or of a URL (`http://consul:8500/...`); a URL without one has its scheme's.
pub fn port_of(address: &str) -> Result<u16, String> {
    let (scheme, rest) = match address.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, address),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((_, port)) if !port.ends_with(']') => port.parse().map_err(|_| format!("`{port}` is no port number")),
        _ => match scheme {
            Some("https") => Ok(443),
            Some("http") => Ok(80),
            _ => Err(format!("`{address}` names no port")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ip_literals_or_dns_names_and_nothing_else() {
        for good in ["127.0.0.1", "::1", "[::1]", "agent-1.tarsier.svc", "localhost", "a"] {
            assert!(is_host(good), "{good}");
        }
        for bad in ["", "127.0.0.1;touch x", "a b", "a/b", "u@h", "-a", "a..b", "$(id)", "`id`", "a'b"] {
            assert!(!is_host(bad), "{bad}");
        }
        assert!(is_host_port("127.0.0.1:8080") && is_host_port("[::1]:1"));
        assert!(!is_host_port("127.0.0.1:x") && !is_host_port("h;x:1") && !is_host_port("h"));
        assert_eq!(port_of("http://consul:8500/v1"), Ok(8500));
        assert_eq!(port_of("[::1]:9"), Ok(9));
        assert_eq!(port_of("https://consul"), Ok(443));
        assert!(port_of("consul").is_err());
    }
}
