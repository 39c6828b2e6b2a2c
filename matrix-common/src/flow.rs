//! The flow hash: computed once where a packet enters the overlay, from the inner
//! 5-tuple, and carried in the Matrix option so transit nodes never parse the inner packet.
//!
//! Both sides use this code: the XDP program to hash, userspace tests to predict the bytes.

/// 16-bit flow hash carried in the Matrix option.
pub type FlowHash = u16;

const SEED: u32 = 0x6D61_7478; // "matx"

/// Murmur3's 32-bit finaliser: every input bit affects every output bit.
#[inline(always)]
const fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^= h >> 16;
    h
}

#[inline(always)]
const fn mix(h: u32, word: u32) -> u32 {
    fmix32(h ^ word).rotate_left(13).wrapping_add(0x9E37_79B9)
}

#[inline(always)]
const fn finish(h: u32) -> FlowHash {
    let h = fmix32(h);
    (h ^ (h >> 16)) as u16
}

#[inline(always)]
const fn ports_word(proto: u8, src_port: u16, dst_port: u16) -> (u32, u32) {
    (proto as u32, ((src_port as u32) << 16) | dst_port as u32)
}

/// Flow hash of an IPv4 5-tuple (ports 0 for protocols without ports).
#[inline(always)]
pub const fn flow_hash_v4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    src_port: u16,
    dst_port: u16,
) -> FlowHash {
    let (p, ports) = ports_word(proto, src_port, dst_port);
    let mut h = mix(SEED, u32::from_be_bytes(src));
    h = mix(h, u32::from_be_bytes(dst));
    h = mix(h, ports);
    h = mix(h, p);
    finish(h)
}

/// Flow hash of an IPv6 5-tuple; each address is folded to one word first.
#[inline(always)]
pub const fn flow_hash_v6(
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    src_port: u16,
    dst_port: u16,
) -> FlowHash {
    let (p, ports) = ports_word(proto, src_port, dst_port);
    let mut h = mix(SEED, fold128(src));
    h = mix(h, fold128(dst));
    h = mix(h, ports);
    h = mix(h, p);
    finish(h)
}

#[inline(always)]
const fn fold128(a: [u8; 16]) -> u32 {
    u32::from_be_bytes([a[0], a[1], a[2], a[3]])
        ^ u32::from_be_bytes([a[4], a[5], a[6], a[7]]).rotate_left(8)
        ^ u32::from_be_bytes([a[8], a[9], a[10], a[11]]).rotate_left(16)
        ^ u32::from_be_bytes([a[12], a[13], a[14], a[15]]).rotate_left(24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_field() {
        let base = flow_hash_v4([10, 1, 0, 2], [10, 4, 0, 2], 6, 40000, 80);
        assert_ne!(
            base,
            flow_hash_v4([10, 1, 0, 3], [10, 4, 0, 2], 6, 40000, 80)
        );
        assert_ne!(
            base,
            flow_hash_v4([10, 1, 0, 2], [10, 4, 0, 3], 6, 40000, 80)
        );
        assert_ne!(
            base,
            flow_hash_v4([10, 1, 0, 2], [10, 4, 0, 2], 17, 40000, 80)
        );
        assert_ne!(
            base,
            flow_hash_v4([10, 1, 0, 2], [10, 4, 0, 2], 6, 40001, 80)
        );
        assert_ne!(
            base,
            flow_hash_v4([10, 1, 0, 2], [10, 4, 0, 2], 6, 40000, 81)
        );
    }

    #[test]
    fn hash_spreads_over_four_buckets() {
        let mut buckets = [0u32; 4];
        for port in 0..4000u16 {
            let h = flow_hash_v6([0xfd; 16], [0xfe; 16], 6, 30000 + port, 443);
            buckets[(h % 4) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "uneven spread: {buckets:?}");
        }
    }
}
