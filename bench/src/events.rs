//! [`EventReader`]: the `sent_us` stamps of watch events, read in place.

/// The number at the start of `bytes`, if any.
pub fn digits_u64(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    (digits > 0).then(|| bytes[..digits].iter().fold(0u64, |n, b| n * 10 + u64::from(b - b'0')))
}

/// Reads watch events from DATA frames: the `sent_us` stamp of every complete
/// line, without copying unless a line spans frames (flow control splits them).
pub struct EventReader {
    partial: Vec<u8>,
    finder: memchr::memmem::Finder<'static>,
}

impl Default for EventReader {
    fn default() -> Self {
        EventReader { partial: Vec::new(), finder: memchr::memmem::Finder::new(b"\"sent_us\":") }
    }
}

impl EventReader {
    /// Calls `stamp` with the `sent_us` of each complete line in `data`.
    pub fn feed(&mut self, mut data: &[u8], mut stamp: impl FnMut(u64)) {
        let finder = &self.finder;
        let mut line_stamp = |line: &[u8]| {
            if let Some(at) = finder.find(line) {
                if let Some(v) = digits_u64(&line[at + finder.needle().len()..]) {
                    stamp(v);
                }
            }
        };
        if !self.partial.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', data) else {
                self.partial.extend_from_slice(data);
                return;
            };
            self.partial.extend_from_slice(&data[..nl]);
            line_stamp(&self.partial);
            self.partial.clear();
            data = &data[nl + 1..];
        }
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            line_stamp(&data[start..nl]);
            start = nl + 1;
        }
        self.partial.extend_from_slice(&data[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_frames() {
        let mut r = EventReader::default();
        let mut got = Vec::new();
        r.feed(b"{\"sent_us\":12}\n{\"a\":1,\"sent_", |v| got.push(v));
        r.feed(b"us\":34}\n{\"sent_us\":5", |v| got.push(v));
        r.feed(b"6}\n", |v| got.push(v));
        assert_eq!(got, vec![12, 34, 56]);
    }
}
