//! The eFuse coding schemes: Reed-Solomon (44, 32) on the ESP32-C3, -S3 and -C6, where 12 check
//! bytes guard each 32-byte block, and the ESP32's 3/4 coding, where each 6 data bytes carry an
//! XOR byte and a weighted bit count.
//!
//! The Reed-Solomon code is the one espefuse writes to PGM_CHECK_VALUE0..2 (`reedsolo.RSCodec(12)`:
//! GF(2^8) with the polynomial 0x11D, generator roots α^0..α^11, check bytes after the data).

/// Check bytes of a Reed-Solomon coded block.
pub(crate) const RS_CHECK_BYTES: usize = 12;

/// Multiplies in GF(2^8) modulo x^8 + x^4 + x^3 + x^2 + 1.
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1D;
        }
        b >>= 1;
    }
    product
}

/// The generator polynomial ∏ (x - α^i), i < 12, highest degree first.
fn generator() -> [u8; RS_CHECK_BYTES + 1] {
    let mut g = [0u8; RS_CHECK_BYTES + 1];
    g[0] = 1;
    let mut root = 1u8;
    for degree in 1..=RS_CHECK_BYTES {
        // g *= (x + root): shift in place from the low end.
        for j in (1..=degree).rev() {
            g[j] ^= gf_mul(g[j - 1], root);
        }
        root = gf_mul(root, 2);
    }
    g
}

/// The 12 Reed-Solomon check bytes of a 32-byte block.
pub(crate) fn rs_check(data: &[u8; 32]) -> [u8; RS_CHECK_BYTES] {
    let g = generator();
    let mut rem = [0u8; RS_CHECK_BYTES];
    for &byte in data {
        let coef = byte ^ rem[0];
        rem.rotate_left(1);
        rem[RS_CHECK_BYTES - 1] = 0;
        if coef != 0 {
            for (r, &gj) in rem.iter_mut().zip(&g[1..]) {
                *r ^= gf_mul(gj, coef);
            }
        }
    }
    rem
}

/// The ESP32's 3/4 check of one 8-byte group: 6 data bytes, their XOR, and the sum of each
/// byte's set bits weighted by its position (1..6).
pub(crate) fn three_four_ok(group: &[u8]) -> bool {
    let [data @ .., xor, sum] = group else {
        return false;
    };
    let x = data.iter().fold(0, |acc, b| acc ^ b);
    let s: u32 = data
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u32 + 1) * b.count_ones())
        .sum();
    data.len() == 6 && x == *xor && s == u32::from(*sum)
}

/// The 8 coded bytes for 6 data bytes under 3/4 coding.
#[cfg(test)]
pub(crate) fn three_four_encode(data: &[u8; 6]) -> [u8; 8] {
    let mut group = [0u8; 8];
    group[..6].copy_from_slice(data);
    group[6] = data.iter().fold(0, |acc, b| acc ^ b);
    group[7] = data
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u32 + 1) * b.count_ones())
        .sum::<u32>() as u8;
    group
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn reed_solomon_matches_espefuse() {
        // reedsolo.RSCodec(12).encode(...)[32:] for these blocks.
        let counting: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(hex(&rs_check(&counting)), "a04c470d3ffcb203dae9f413");
        assert_eq!(hex(&rs_check(&[0xFF; 32])), "13a36292597404257375e0aa");
        assert_eq!(rs_check(&[0; 32]), [0; 12]);
    }

    #[test]
    fn three_four_groups() {
        let group = three_four_encode(&[1, 2, 3, 0xFF, 0, 0x80]);
        assert!(three_four_ok(&group));
        let mut bad = group;
        bad[2] ^= 1;
        assert!(!three_four_ok(&bad));
    }
}
