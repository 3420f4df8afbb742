//! `flows.networks` as sorted, merged address ranges: whether an address is protected is a
//! binary search instead of a scan of every configured prefix (asked for each record's source
//! and destination that is not tracked yet, so for every record from outside).

use std::net::IpAddr;

use crate::config::flows::Prefix;

#[derive(Debug, Clone, Default)]
pub struct Nets {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

fn merge<T: Copy + Ord>(mut r: Vec<(T, T)>, succ: impl Fn(T) -> Option<T>) -> Vec<(T, T)> {
    r.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(r.len());
    for (s, e) in r {
        match out.last_mut() {
            Some(last) if succ(last.1).is_none_or(|n| s <= n) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn hit<T: Copy + Ord>(r: &[(T, T)], x: T) -> bool {
    // The last range starting at or before x.
    let i = r.partition_point(|&(s, _)| s <= x);
    i > 0 && x <= r[i - 1].1
}

impl Nets {
    pub fn new(prefixes: &[Prefix]) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for p in prefixes {
            match p.addr {
                IpAddr::V4(a) => {
                    let host =
                        if p.len == 0 { u32::MAX } else { u32::MAX.checked_shr(u32::from(p.len.min(32))).unwrap_or(0) };
                    let s = u32::from(a) & !host;
                    v4.push((s, s | host));
                }
                IpAddr::V6(a) => {
                    let host = if p.len == 0 {
                        u128::MAX
                    } else {
                        u128::MAX.checked_shr(u32::from(p.len.min(128))).unwrap_or(0)
                    };
                    let s = u128::from(a) & !host;
                    v6.push((s, s | host));
                }
            }
        }
        Nets { v4: merge(v4, |x| x.checked_add(1)), v6: merge(v6, |x| x.checked_add(1)) }
    }

    /// The same answer as `prefixes.iter().any(|p| p.contains(ip))`: an IPv4-mapped IPv6
    /// address is inside an IPv4 prefix, and compared as IPv6 with IPv6 prefixes.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => hit(&self.v4, u32::from(a)),
            IpAddr::V6(a) => {
                a.to_ipv4_mapped().is_some_and(|m| hit(&self.v4, u32::from(m))) || hit(&self.v6, u128::from(a))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_answer_as_a_scan_of_the_prefixes() {
        let nets: Vec<Prefix> = [
            "10.0.0.0/8",
            "10.1.0.0/16",
            "192.0.2.0/25",
            "192.0.2.128/25",
            "198.51.100.7/32",
            "2001:db8::/32",
            "2001:db8:1::/48",
            "::ffff:203.0.113.0/120",
            "fe80::1/128",
        ]
        .iter()
        .map(|n| Prefix::parse(n).unwrap())
        .collect();
        let set = Nets::new(&nets);
        let probes = [
            "10.0.0.0",
            "9.255.255.255",
            "10.255.255.255",
            "11.0.0.0",
            "192.0.2.0",
            "192.0.2.255",
            "192.0.3.0",
            "198.51.100.7",
            "198.51.100.6",
            "198.51.100.8",
            "203.0.113.5",
            "::ffff:10.2.3.4",
            "::ffff:11.2.3.4",
            "::ffff:203.0.113.5",
            "::ffff:203.0.114.5",
            "2001:db8::1",
            "2001:db9::",
            "2001:db7:ffff::",
            "fe80::1",
            "fe80::2",
            "::",
            "255.255.255.255",
            "0.0.0.0",
        ];
        for p in probes {
            let ip: IpAddr = p.parse().unwrap();
            assert_eq!(set.contains(ip), nets.iter().any(|n| n.contains(ip)), "{p}");
        }
        // Everything and nothing.
        let all = Nets::new(&[Prefix::parse("0.0.0.0/0").unwrap(), Prefix::parse("::/0").unwrap()]);
        assert!(all.contains("1.2.3.4".parse().unwrap()) && all.contains("2001::1".parse().unwrap()));
        assert!(!Nets::new(&[]).contains("1.2.3.4".parse().unwrap()));
    }
}
