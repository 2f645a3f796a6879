//! Inputs found by the fuzz targets (fuzz/, `scripts/fuzz`) that once crashed Ingot.

use std::sync::Arc;

use arrow_array::{ArrayRef, NullArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use ingot_test_support::temp_dir;

/// Write one batch of `columns` as an Arrow IPC stream file (it must be tiny: a hostile file), read
/// it with Ingot's reader and return the error it must give.
fn read_tiny_stream(schema: Arc<Schema>, columns: Vec<ArrayRef>) -> String {
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut bytes = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &schema).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    assert!(bytes.len() < 4096, "the hostile file is tiny: {} bytes", bytes.len());
    let dir = temp_dir("fuzz-arrow");
    let path = dir.write("data-00000-of-00001.arrow", &bytes);
    ingot_eval::data::read_arrow_stream(&path).expect_err("a claim the file's bytes cannot back").to_string()
}

/// fuzz target `arrow`: a Null-typed column needs no buffers, so a file of a few hundred bytes
/// could claim a billion rows, and reading it grew the row list until the allocator gave up
/// (2.4 GB under the fuzzer's 2 GB cap). It must be refused as damaged.
#[test]
fn a_batch_claiming_more_rows_than_the_file_holds_is_refused() {
    let schema = Arc::new(Schema::new(vec![Field::new("label", DataType::Null, true)]));
    let column: ArrayRef = Arc::new(NullArray::new(1 << 30));
    let err = read_tiny_stream(schema, vec![column]);
    assert!(err.contains("damaged") && err.contains("1073741824 rows"), "{err}");
}

/// fuzz target `arrow`, again: one row whose list of Null items claims a billion of them (Null
/// items need no bytes either) grew one JSON array to 3.7 GB. Every value read is now counted
/// against what the file can hold.
#[test]
fn a_list_claiming_more_items_than_the_file_holds_is_refused() {
    use arrow_array::builder::{ListBuilder, NullBuilder};
    use arrow_array::Array;
    let mut builder = ListBuilder::new(NullBuilder::new());
    builder.values().append_nulls(1 << 30);
    builder.append(true);
    let list = builder.finish();
    let schema = Arc::new(Schema::new(vec![Field::new("choices", list.data_type().clone(), true)]));
    let err = read_tiny_stream(schema, vec![Arc::new(list) as ArrayRef]);
    assert!(err.contains("damaged") && !err.contains('\n'), "{err}");
}
