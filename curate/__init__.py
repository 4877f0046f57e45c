"""curate: composable stages over a table of examples, run from a notebook or a spec file."""
from .errors import CurateError, InputError, SpecError, StageError
from .export import ChatExport, SharegptExport
from .io import read_table, write_table
from .pipeline import Pipeline, ReportOptions
from .stage import Stage, StageResult
from .stages.filters import AssertionFilter, ComplexityFilter, Filter
from .stages.sampling import Mix, Sample

__all__ = ["AssertionFilter", "ChatExport", "ComplexityFilter", "CurateError", "Filter",
           "InputError", "Mix", "Pipeline", "ReportOptions", "Sample", "SharegptExport",
           "SpecError", "Stage", "StageError", "StageResult", "read_table", "write_table"]
