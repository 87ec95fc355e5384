"""Frames for ML pipelines: decoded frames as NumPy arrays or torch tensors, never through jpg/png.

* :func:`frames` yields one :class:`Frame` per output of a ``video/snapshots`` request;
  :func:`frames_batch` stacks them into one ``[N, ...]`` array or tensor (:class:`Batch`).
* ``output="torch"`` on ``device="cpu"`` wraps the CPU result (the same pixels as NumPy). On
  ``device="cuda"`` the decoded YUV planes go to the GPU as uint8 and are converted and resized
  there by :mod:`torch_ops`; the stream itself is decoded by NVDEC when :mod:`hwdecode` allows.
* :class:`FrameDataset` (a ``torch.utils.data.IterableDataset``, defined on first use so this
  module imports without torch) reads a list of sources across DataLoader workers.

torch is optional: nothing here imports it until torch output is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from . import geometry, loader, transform
from . import sources as _sources
from .decode import Source
from .devices import check_device, device_of, import_torch
from .errors import InvalidArgument, MediaError
from .params import SnapshotsRequest
from .pipeline import Capture, Output, open_capture

# FrameDataset is defined on first access (module __getattr__), so it is not listed here.
__all__ = [
    "Batch",
    "ClipSample",
    "Frame",
    "FrameSample",
    "frames",
    "frames_batch",
    "frames_batches",
]

OUTPUTS = ("numpy", "torch")
LAYOUTS = ("HWC", "CHW")


@dataclass(frozen=True)
class Frame:
    """One decoded output as an array (no encoding).

    ``array`` is RGB uint8: an (H, W, 3) ``np.ndarray`` by default, a (3, H, W) ``torch.Tensor``
    for ``output="torch"``; ``layout`` overrides either. Always C-contiguous.
    """

    array: Any
    time_ms: int  # the frame's time from the first frame, rounded up to whole ms
    keyframe: bool
    index: int | None  # the frame's stream number, presentation order, from 0; None: not known
    score: float | None = None  # dhash mode: percent of hash bits changed from the previous


@dataclass(frozen=True)
class Batch:
    """All outputs of one source stacked: ``data`` is ``[N, H, W, 3]`` (HWC) or ``[N, 3, H, W]``
    (CHW) uint8, an ``np.ndarray`` or a ``torch.Tensor``; the tuples hold each frame's values."""

    data: Any
    times_ms: tuple[int, ...]
    indices: tuple[int | None, ...]  # as Frame.index
    keyframes: tuple[bool, ...]
    scores: tuple[float | None, ...]

    def __len__(self) -> int:
        return len(self.times_ms)


class FrameSample(NamedTuple):
    """One frame of :class:`FrameDataset`; ``default_collate`` batches each field."""

    data: Any  # (3, H, W) tensor (CHW) or (H, W, 3)
    source: int  # position of the source in the dataset's list
    time_ms: int
    index: int  # type: ignore[assignment]  # as Frame.index, -1 where None (shadows tuple.index)
    keyframe: bool
    score: float  # dhash mode's score, NaN in other modes


class ClipSample(NamedTuple):
    """All frames of one source, from :class:`FrameDataset` with ``clips=True``."""

    data: Any  # (N, 3, H, W) tensor (CHW) or (N, H, W, 3)
    source: int
    times_ms: Any  # (N,) int64 tensor
    indices: Any  # (N,) int64 tensor, -1 where Frame.index is None


@dataclass(frozen=True)
class _Output:
    """Resolved output options: ``device`` is ``"cpu"`` or ``"cuda:<index>"``.

    ``on_device``: convert and resize with torch_ops on ``device`` (always for CUDA; tests set
    it on the CPU to run the GPU pipeline where no GPU exists).
    """

    kind: str
    device: str
    layout: str
    on_device: bool = False

    @property
    def cuda(self) -> bool:
        return self.device != "cpu"

    @property
    def backend(self) -> transform.Backend:
        """The render step's backend: torch_ops on the device, else NumPy and the C++ kernels."""
        if not self.on_device:
            return transform.NUMPY
        from .torch_ops import RenderBackend

        return RenderBackend(self.device, self.layout)


# ---------------------------------------------------------------------------------------------
# Public functions


def frames(
    source: Source,
    m: str = "default",
    thr: int = 0,
    inter: int = 0,
    num: int = 0,
    ss: int = 0,
    w: int | None = None,
    h: int | None = None,
    pw: int | None = None,
    ph: int | None = None,
    scaletype: str = "stretch",
    output: str = "numpy",
    device: str = "cpu",
    layout: str | None = None,
    threads: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[Frame]:
    """Like :func:`snapshots`, but yields decoded RGB frames as arrays or tensors.

    ``output``: ``"numpy"`` (default) or ``"torch"``. ``device``: ``"cpu"`` (default),
    ``"cuda"`` / ``"cuda:<index>"`` (torch output only; an error where CUDA is unavailable) or
    ``"auto"`` (CUDA when torch sees a GPU, else the CPU). ``layout``: ``"HWC"`` (the NumPy
    default) or ``"CHW"`` (the torch default). ``threads``: decoder threads (default
    ``OSSFRAME_DECODE_THREADS``, else one per core). ``source`` and ``storage_options`` as for
    :func:`~ossframe_native.api.snapshot` (paths, URLs, bytes, file objects).

    Every argument is checked, the source opened and the request resolved against it (``ss``
    against the duration) before this returns; decoding happens as the iterator is consumed.
    """
    request, out = _validate(locals())
    run = _open(_sources.bind(source, storage_options), request, out, threads)
    return _frames(run, out)


def frames_batch(
    source: Source,
    m: str = "default",
    thr: int = 0,
    inter: int = 0,
    num: int = 0,
    ss: int = 0,
    w: int | None = None,
    h: int | None = None,
    pw: int | None = None,
    ph: int | None = None,
    scaletype: str = "stretch",
    output: str = "numpy",
    device: str = "cpu",
    layout: str | None = None,
    threads: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Batch:
    """All frames :func:`frames` yields for these arguments, stacked into one :class:`Batch`.

    With no frames (e.g. dhash with a high ``thr``) ``data`` has N = 0 and the size the frames
    would have had. Frames must share one size: a source that changes resolution mid-stream
    with a size-dependent geometry (``w``/``h`` not both given, or ``scaletype="fit"``) is a
    :class:`MediaError`.
    """
    request, out = _validate(locals())
    return _batch(_sources.bind(source, storage_options), request, out, threads)


def frames_batches(
    sources: Iterable[Source],
    m: str = "default",
    thr: int = 0,
    inter: int = 0,
    num: int = 0,
    ss: int = 0,
    w: int | None = None,
    h: int | None = None,
    pw: int | None = None,
    ph: int | None = None,
    scaletype: str = "stretch",
    output: str = "numpy",
    device: str = "cpu",
    layout: str | None = None,
    threads: int | None = None,
    decoders: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[Batch]:
    """:func:`frames_batch` of each source, in the order of ``sources``, with ``decoders``
    sources decoding at once (:mod:`loader`): on a GPU, one per NVDEC engine by default, so
    that every engine has work; on the CPU 1 (one source at a time on every core). URL sources
    are opened with ``storage_options``.

    Every argument is checked here; each source is opened when its turn to decode comes (its
    ``MediaError`` is raised when the iterator reaches it). With ``decoders`` > 1 each source
    decodes with ``threads`` threads (default: the cores shared among the decoders)."""
    args = dict(locals())
    request, out = _validate(args)
    count = decoders_of(decoders, out.device)
    items = [_sources.bind(source, storage_options) for source in sources]
    if count == 1:
        return (_batch(source, request, out, threads) for source in items)
    per_source = threads if threads is not None else loader.threads_per_source(count)

    def one(source: Source) -> Iterator[Batch]:
        yield _batch(source, request, out, per_source)

    return (batch for _, batch in loader.ordered(items, one, count, ahead=1))


def decoders_of(decoders: Any, device: str) -> int:
    """``decoders`` checked, or the device's default (:func:`loader.decoders_for`)."""
    if decoders is None:
        return loader.decoders_for(device)
    return loader.check_decoders(decoders)


def _batch(source: Source, request: SnapshotsRequest, out: _Output, threads: int | None) -> Batch:
    with _open(source, request, out, threads) as run:
        items = list(_render_all(run, out))
        if items:
            shapes = {tuple(fr.array.shape) for fr in items}
            if len(shapes) > 1:
                raise MediaError(
                    "the frames have different sizes "
                    f"({', '.join(str(s) for s in sorted(shapes))}): the source changes "
                    "resolution; give both w and h with scaletype stretch, crop or fill"
                )
            data = _stack([fr.array for fr in items], out)
        else:
            data = _empty(run.geometry, out)
    return Batch(
        data=data,
        times_ms=tuple(fr.time_ms for fr in items),
        indices=tuple(fr.index for fr in items),
        keyframes=tuple(fr.keyframe for fr in items),
        scores=tuple(fr.score for fr in items),
    )


# ---------------------------------------------------------------------------------------------
# Validation


# The video/snapshots parameters frames() takes (all but the image format f).
PARAMS = ("m", "thr", "inter", "num", "ss", "w", "h", "pw", "ph", "scaletype")


def _validate(args: dict[str, Any]) -> tuple[SnapshotsRequest, _Output]:
    """Checks every argument of frames()/frames_batch() before anything is opened."""
    request = _request({k: args[k] for k in PARAMS})
    out = _resolve_output(args["output"], args["device"], args["layout"])
    _check_threads(args["threads"])
    return request, out


def _request(params: dict[str, Any]) -> SnapshotsRequest:
    for name in params:
        if name not in PARAMS:
            raise InvalidArgument(name, f"unknown parameter; allowed: {', '.join(PARAMS)}")
    request: SnapshotsRequest = SnapshotsRequest.from_kwargs(params)
    return request


def _resolve_output(output: Any, device: Any, layout: Any) -> _Output:
    if output not in OUTPUTS:
        raise InvalidArgument("output", f"must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if layout is None:
        layout = "HWC" if output == "numpy" else "CHW"
    elif layout not in LAYOUTS:
        raise InvalidArgument("layout", f"must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    name = check_device(device)
    if output == "numpy":
        if name not in ("cpu", "auto"):
            raise InvalidArgument(
                "device",
                f"NumPy output is on the CPU; use output='torch' for device={name!r} "
                "(or device='cpu')",
            )
        return _Output("numpy", "cpu", layout)
    import_torch()
    resolved = device_of(name)
    return _Output("torch", resolved, layout, on_device=resolved != "cpu")


def _check_threads(threads: Any) -> None:
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise InvalidArgument(
            "threads", f"must be None or an integer >= 0 (0: one per core), got {threads!r}"
        )


# ---------------------------------------------------------------------------------------------
# Decoding and rendering


def _open(source: Source, request: SnapshotsRequest, out: _Output, threads: int | None) -> Capture:
    """Opens and resolves the capture; on CUDA asks for GPU decode (decode.py falls back to the
    CPU with a reason; dhash always decodes on the CPU, it hashes luma there)."""
    return open_capture(source, request, threads=threads, hw=out.device if out.cuda else None)


def _frames(run: Capture, out: _Output) -> Iterator[Frame]:
    for fr in _render_all(run, out):
        yield replace(fr, array=_wrap(fr.array, out))


def _render_all(run: Capture, out: _Output) -> Iterator[Frame]:
    def frame(output: Output) -> Frame:
        array = _render(output.frame, run.geometry_for(output.frame), out)
        return Frame(array, output.time_ms, output.keyframe, output.index, output.score)

    return run.mapped(frame, ahead=0)


def _render(frame: Any, shape: geometry.Geometry, out: _Output) -> Any:
    """The frame in ``out.layout``: a tensor from the device backend, else a NumPy array (CPU
    torch output wraps it at the end, see _wrap)."""
    image = transform.render(frame, shape, backend=out.backend)
    if isinstance(image, np.ndarray):
        return image if out.layout == "HWC" else np.ascontiguousarray(image.transpose(2, 0, 1))
    return (image if out.layout == "HWC" else image.permute(2, 0, 1)).contiguous()


def _wrap(array: Any, out: _Output) -> Any:
    """CPU results stay NumPy until here: torch output shares their memory (no copy).

    Copies, transposes and stacks are done in NumPy, single-threaded: torch's CPU ops run on its
    intra-op thread pool, which competes with the decoder's threads and was measured 10-100x
    slower than NumPy for these small copies on a loaded 2-core machine.
    """
    if out.kind == "torch" and isinstance(array, np.ndarray):
        return import_torch().from_numpy(array)
    return array


def _stack(arrays: list[Any], out: _Output) -> Any:
    if isinstance(arrays[0], np.ndarray):
        return _wrap(np.stack(arrays), out)
    return import_torch().stack(arrays)


def _empty(shape: geometry.Geometry, out: _Output) -> Any:
    """A 0-frame batch shaped as the frames of the stream would be."""
    w, h = shape.canvas
    dims = (0, h, w, 3) if out.layout == "HWC" else (0, 3, h, w)
    if out.kind == "numpy":
        return np.empty(dims, dtype=np.uint8)
    torch = import_torch()
    return torch.empty(dims, dtype=torch.uint8, device=out.device)


# ---------------------------------------------------------------------------------------------
# The torch dataset


def worker_threads(num_workers: int) -> int:
    """Decoder threads for each of ``num_workers`` DataLoader workers: the CPUs this process
    may use, shared evenly (at least 1), so workers x threads never exceeds the cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, num_workers))


def _define_dataset() -> type:
    torch = import_torch("FrameDataset")
    from torch.utils.data import IterableDataset, get_worker_info

    # misc: where torch is not installed, type checkers see IterableDataset as Any.
    class FrameDataset(IterableDataset[Any]):  # type: ignore[misc, unused-ignore]
        """The frames of many sources for a ``torch.utils.data.DataLoader``.

        ``sources`` are paths, URLs or ``bytes`` (file objects do not cross process boundaries);
        ``storage_options`` open the URLs. The remaining keywords are those of :func:`frames`
        (validated here, before any worker starts). Each source is read by exactly one worker:
        worker ``k`` of ``n`` takes sources
        ``k, k + n, k + 2n, ...``, in order, so every frame is produced exactly once.

        Items are :class:`FrameSample` (one per frame) or, with ``clips=True``,
        :class:`ClipSample` (one per source, all its frames stacked); both collate with the
        default ``collate_fn``. In a worker the decoder gets ``threads`` threads; by default
        ``OSSFRAME_DECODE_THREADS`` if set, else :func:`worker_threads` (cores / workers).
        Decode on the CPU in workers (``device="cpu"``, the default): CUDA does not work in
        forked workers; move batches to the GPU in the main process. Or decode on the GPU in
        the main process (``device="cuda"``, no workers): ``decoders`` sources decode at once
        (default: one per NVDEC engine, see :func:`frames_batches`), items in source order.
        """

        def __init__(
            self,
            sources: Sequence[Source],
            *,
            clips: bool = False,
            output: str = "torch",
            device: str = "cpu",
            layout: str | None = None,
            threads: int | None = None,
            storage_options: Mapping[str, Any] | None = None,
            decoders: int | None = None,
            **params: Any,
        ) -> None:
            super().__init__()
            if isinstance(sources, (str, bytes, os.PathLike)) or not isinstance(sources, Sequence):
                raise InvalidArgument("sources", "must be a list of paths, URLs or bytes objects")
            self.sources = list(sources)
            self.clips = bool(clips)
            self.params = dict(params)
            self.threads = threads
            self.options: dict[str, Any] = dict(output=output, device=device, layout=layout)
            self.options["storage_options"] = storage_options
            _request(self.params)  # unknown or bad parameters fail here, not in a worker
            out = _resolve_output(output, device, layout)
            _check_threads(threads)
            self.decoders = decoders_of(decoders, out.device)

        def __len__(self) -> int:
            """The number of sources (not frames: that is known only once they are read)."""
            return len(self.sources)

        def assigned(self) -> list[int]:
            """The positions in ``sources`` this process reads: all of them outside a worker."""
            info = get_worker_info()
            if info is None:
                return list(range(len(self.sources)))
            return list(range(info.id, len(self.sources), info.num_workers))

        def _threads(self) -> int | None:
            info = get_worker_info()
            if self.threads is not None or info is None:
                return self.threads
            if os.environ.get("OSSFRAME_DECODE_THREADS", "").isdigit():
                return None  # VideoSource reads it
            return worker_threads(info.num_workers)

        def __iter__(self) -> Iterator[Any]:
            options: dict[str, Any] = {**self.options, "threads": self._threads()}
            positions = self.assigned()
            sources = [self.sources[p] for p in positions]
            if self.clips:
                batches = frames_batches(sources, **self.params, **options, decoders=self.decoders)
                for position, batch in zip(positions, batches, strict=True):
                    yield ClipSample(
                        batch.data,
                        position,
                        torch.tensor(batch.times_ms, dtype=torch.int64),
                        torch.tensor(
                            [-1 if i is None else i for i in batch.indices], dtype=torch.int64
                        ),
                    )
                return
            for at, fr in self._frames(sources, options):
                score = float("nan") if fr.score is None else fr.score
                index = -1 if fr.index is None else fr.index
                yield FrameSample(fr.array, positions[at], fr.time_ms, index, fr.keyframe, score)

        def _frames(
            self, sources: list[Source], options: dict[str, Any]
        ) -> Iterator[tuple[int, Frame]]:
            """(place in ``sources``, frame) of every frame, in order; ``decoders`` at once."""
            if self.decoders == 1:
                for at, source in enumerate(sources):
                    yield from ((at, fr) for fr in frames(source, **self.params, **options))
                return
            if options["threads"] is None:
                options["threads"] = loader.threads_per_source(self.decoders)
            yield from loader.ordered(
                sources, lambda source: frames(source, **self.params, **options), self.decoders
            )

    FrameDataset.__module__ = __name__
    FrameDataset.__qualname__ = "FrameDataset"
    return FrameDataset


def __getattr__(name: str) -> Any:
    # FrameDataset subclasses a torch class, so it is defined on first access (importing torch).
    # Cached in the module so pickling (DataLoader workers under spawn) finds the same class.
    if name == "FrameDataset":
        cls = _define_dataset()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
