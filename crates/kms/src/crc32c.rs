//! CRC32C (Castagnoli), the checksum Cloud KMS uses to detect corruption of requests and
//! responses in transit. Bitwise: the inputs are a few dozen bytes.

/// The CRC32C of `data`, as Cloud KMS's `*_crc32c` fields carry it.
pub fn crc32c(data: &[u8]) -> i64 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    i64::from(!crc)
}

#[cfg(test)]
mod tests {
    use super::crc32c;

    #[test]
    fn known_values() {
        // RFC 3720, B.4, and the usual check value.
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    }
}
