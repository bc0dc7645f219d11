//! Record encoding: the only module that knows the serializer.
//!
//! Records are encoded with bincode 2.0's standard configuration (little-endian, variable-length
//! integers) through serde. bincode is unmaintained (RUSTSEC-2025-0141) and its 3.0.0 release is
//! only a `compile_error!`, so it is pinned to 2.0.x and kept behind these two functions: a
//! replacement must produce the same bytes, or come with a new format version.

use zeroize::Zeroizing;

use crate::token::Token;

/// The largest encoded record the decoder accepts. Nine fields at
/// [`MAX_FIELD_LEN`](crate::token::MAX_FIELD_LEN) plus the id and length prefixes fit well
/// under it; anything larger is refused before it is allocated.
pub(crate) const MAX_RECORD_LEN: usize = 1024 * 1024;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_RECORD_LEN>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_RECORD_LEN>()
}

/// Encodes a token. The buffer is zeroized when dropped.
pub(crate) fn encode(token: &Token) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    bincode::serde::encode_to_vec(token, config())
        .map(Zeroizing::new)
        .map_err(|_| "the record does not encode within the size limit")
}

/// Decodes a token, refusing trailing bytes and anything over [`MAX_RECORD_LEN`].
///
/// The caller zeroizes the result; the error says what is wrong without quoting the input.
pub(crate) fn decode(bytes: &[u8]) -> Result<Token, &'static str> {
    if bytes.len() > MAX_RECORD_LEN {
        return Err("the record is larger than the size limit");
    }
    let (token, used): (Token, usize) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|_| "the record does not decode")?;
    if used != bytes.len() {
        return Err("the record has trailing bytes");
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let token = Token {
            id: Some("7".into()),
            refresh_token: Some("r\0with nul".into()),
            expiry_time: Some(-1),
            ..Token::default()
        };
        assert_eq!(decode(&encode(&token).unwrap()).unwrap(), token);
    }

    #[test]
    fn refuses_trailing_and_truncated_bytes() {
        let mut bytes = encode(&Token::default()).unwrap().to_vec();
        bytes.push(0);
        assert!(decode(&bytes).is_err());
        assert!(decode(&bytes[..3]).is_err());
    }

    #[test]
    fn refuses_a_huge_length_prefix_without_allocating_it() {
        // `Some` followed by a varint length of u64::MAX.
        let bytes = [1u8, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(decode(&bytes).is_err());
    }
}
