//! `segment::scan` on arbitrary segment bytes (what `jisr audit verify`
//! reads from a directory that may have been tampered with): besides not
//! panicking, the valid records it reports must frame back into exactly the
//! bytes before `valid_len`, a problem is reported iff bytes other than
//! zeros (the tail's padding) remain, and
//! every payload decodes as an `AuditRecord` or is refused, never a panic.

#![no_main]

use jisr::audit::log::segment;
use jisr::proto::jisr::audit::v1::AuditRecord;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use std::io::Write as _;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(data).expect("written");
    let mut payloads = Vec::new();
    let scan = segment::scan(file.path(), |offset, payload| {
        payloads.push((offset, payload.to_vec()));
    })
    .expect("a readable file");
    assert_eq!(scan.file_len, data.len() as u64);
    assert!(scan.valid_len <= scan.file_len);
    let rest = &data[scan.valid_len as usize..];
    assert_eq!(scan.problem.is_none(), rest.iter().all(|b| *b == 0));
    assert_eq!(
        scan.padding(),
        if scan.problem.is_none() {
            rest.len() as u64
        } else {
            0
        }
    );
    let mut framed = Vec::new();
    for ((offset, payload), listed) in payloads.iter().zip(&scan.offsets) {
        assert_eq!(offset, listed);
        assert_eq!(*offset as usize, framed.len());
        assert!(!payload.is_empty() && payload.len() <= segment::MAX_RECORD);
        segment::frame(payload, &mut framed);
        let _ = AuditRecord::decode(payload.as_slice());
    }
    assert_eq!(payloads.len(), scan.offsets.len());
    assert_eq!(framed.as_slice(), &data[..scan.valid_len as usize]);
});
