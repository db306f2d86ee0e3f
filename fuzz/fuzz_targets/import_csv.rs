//! A CSV item import: the header row, then every record, as the importer reads them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut records = reader.records();
    let Some(Ok(header)) = records.next() else {
        return;
    };
    let header: Vec<&str> = header.iter().collect();
    let Ok(layout) = domain::CsvLayout::from_header(&header) else {
        return;
    };
    for record in records.flatten() {
        let cells: Vec<&str> = record.iter().collect();
        if let Ok(item) = layout.parse_record(&cells) {
            assert!(item.responses.len() >= 2);
        }
    }
});
