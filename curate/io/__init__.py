"""Reading and writing tables: readers with file:line errors, atomic writers, Parquet."""
from .atomic import atomic_path, write_frame_jsonl, write_json, write_jsonl, write_text
from .read import read_table
from .write import save_dataset_folder, write_table

__all__ = ["atomic_path", "read_table", "save_dataset_folder", "write_frame_jsonl", "write_json",
           "write_jsonl", "write_table", "write_text"]
