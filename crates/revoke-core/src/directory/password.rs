//! New passwords for `revoke reset`, and how AD wants them on the wire.

use crate::Password;

/// Long enough to never be the weak point; AD's default minimum is 7.
pub const GENERATED_LENGTH: usize = 28;

// No look-alikes (I/l/1, O/0) so a password read off a screen survives.
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGIT: &[u8] = b"23456789";
const SYMBOL: &[u8] = b"-_.!#%+=?";

/// A password from the operating system's CSPRNG with every character class
/// AD's complexity rule counts (it needs three of the four).
pub fn generate() -> Password {
    generate_with_length(GENERATED_LENGTH)
}

/// [`generate`] with `length` characters (at least 4, one of each class).
pub fn generate_with_length(length: usize) -> Password {
    let length = length.max(4);
    let alphabet: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL].concat();
    loop {
        let text: String = (0..length)
            .map(|_| alphabet[uniform(alphabet.len())] as char)
            .collect();
        let has = |class: &[u8]| text.bytes().any(|b| class.contains(&b));
        if has(UPPER) && has(LOWER) && has(DIGIT) && has(SYMBOL) {
            return Password::new(text);
        }
    }
}

/// A uniformly distributed index below `n` (rejection sampling, no modulo bias).
fn uniform(n: usize) -> usize {
    let limit = 256 - (256 % n);
    loop {
        let mut byte = [0u8; 1];
        getrandom::fill(&mut byte).expect("the operating system's random source");
        if (byte[0] as usize) < limit {
            return byte[0] as usize % n;
        }
    }
}

/// The `unicodePwd` value: the password in double quotes, UTF-16LE.
pub fn unicode_pwd(password: &Password) -> Vec<u8> {
    format!("\"{}\"", password.expose())
        .encode_utf16()
        .flat_map(|unit| unit.to_le_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_complex_and_different() {
        let a = generate();
        let b = generate();
        assert_eq!(a.expose().len(), GENERATED_LENGTH);
        assert_ne!(a.expose(), b.expose());
        for class in [UPPER, LOWER, DIGIT, SYMBOL] {
            assert!(a.expose().bytes().any(|c| class.contains(&c)));
        }
    }

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        assert_eq!(
            unicode_pwd(&Password::new("Ab1".into())),
            [b'"', 0, b'A', 0, b'b', 0, b'1', 0, b'"', 0]
        );
    }
}
