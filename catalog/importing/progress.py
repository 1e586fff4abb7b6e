"""A one-line progress bar for imports: rows, rows/s and an ETA from the bytes read.

It draws only on a terminal; piped or in tests it stays quiet.
"""

import time
from typing import TextIO

BAR_WIDTH = 24
REDRAW_SECONDS = 0.2


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    def __init__(
        self, stream: TextIO, *, total_bytes: int, label: str, enabled: bool | None = None
    ):
        self.stream = stream
        self.total_bytes = total_bytes
        self.label = label
        self.enabled = stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._last_draw = 0.0

    def update(self, rows: int, bytes_read: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        self.stream.write("\r" + self.render(rows, bytes_read, now - self.started))
        self.stream.flush()

    def render(self, rows: int, bytes_read: int, elapsed: float) -> str:
        rate = rows / elapsed if elapsed > 0 else 0.0
        if self.total_bytes:
            fraction = min(bytes_read / self.total_bytes, 1.0)
            filled = int(fraction * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0.0
            return (
                f"{self.label} [{bar}] {fraction:6.1%} {rows:,} rows "
                f"{rate:,.0f} rows/s ETA {_duration(eta)}"
            )
        return f"{self.label} {rows:,} rows {rate:,.0f} rows/s"

    def close(self, rows: int, bytes_read: int) -> None:
        if self.enabled:
            elapsed = time.monotonic() - self.started
            self.stream.write("\r" + self.render(rows, bytes_read, elapsed) + "\n")
            self.stream.flush()
