"""The fault suite's ledger: what each scenario injected, what recovered, what leaked.

Tests record rows with `record(...)`; `conftest.py` prints the table at the end of the run, so the
closing note can quote measured figures rather than claims. Both counts are measured:

- cloud scenarios (`standalone_world`): injected is the faults that took effect (the simulator's
  failed, slowed or refused calls, plus what the scenario did out of band); recovered is how many
  of them were followed by a clean status (Ready or Stopped, no error). The world records its row
  when it ends, so a scenario that fails shows how far it got.
- proxy scenarios: injected is the faulty clients or cut streams; recovered is the requests served
  normally after (or beside) them, as many as there were faults.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    scenario: str
    injected: int = 0
    recovered: int = 0
    leaked: int = 0
    duplicates: int = 0
    errors: int = 0  # client-visible errors (proxy scenarios)
    rss_mib: float | None = None  # proxy resident memory (proxy scenarios)
    note: str = ""


@dataclass
class Ledger:
    rows: list[Row] = field(default_factory=list)

    def record(self, scenario: str, **figures: object) -> Row:
        row = Row(scenario, **figures)  # type: ignore[arg-type]
        self.rows.append(row)
        return row

    def totals(self) -> Row:
        t = Row("TOTAL")
        for r in self.rows:
            t.injected += r.injected
            t.recovered += r.recovered
            t.leaked += r.leaked
            t.duplicates += r.duplicates
            t.errors += r.errors
            if r.rss_mib is not None:
                t.rss_mib = max(t.rss_mib or 0.0, r.rss_mib)
        return t

    def table(self) -> list[str]:
        head = ("scenario", "injected", "recovered", "leaked", "dupes", "errors", "rss MiB", "note")
        body = [
            (
                r.scenario,
                str(r.injected),
                str(r.recovered),
                str(r.leaked),
                str(r.duplicates),
                str(r.errors),
                "" if r.rss_mib is None else f"{r.rss_mib:.1f}",
                r.note,
            )
            for r in [*self.rows, self.totals()]
        ]
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*b) for b in body]
        return lines


LEDGER = Ledger()


def record(scenario: str, **figures: object) -> Row:
    return LEDGER.record(scenario, **figures)
