"""The text of reports: every score printed with the names and decimals of ``scoring.SCORES``."""

import pandas as pd

from pgdl_harness.figures import _figure_subtitle
from pgdl_harness.render import format_table
from pgdl_harness.report import TaskReport, reports_table
from pgdl_harness.scoring import SCORE_DEFINITIONS, SCORES


def _report() -> TaskReport:
    report = TaskReport("toy_data", "noise", 18, cmi=12.34567, kendall_tau=0.123456, granulated_kendall_tau=-0.45678,
                        seconds_per_model=0.5)
    report.interval = {"cmi": (10.123, 14.567), "kendall_tau": (0.01234, 0.23456)}
    report.chance = {"cmi": {"mean": 5.4321, "p95": 11.111, "p_value": 0.01, "draws": 10, "within": False}}
    return report


def test_score_definitions_name_every_score_once():
    assert [score.name for score in SCORES] == ["cmi", "kendall_tau", "granulated_kendall_tau"]
    assert SCORE_DEFINITIONS["cmi"].digits == 2 and SCORE_DEFINITIONS["kendall_tau"].digits == 3


def test_plain_table_uses_the_table_and_context_digits():
    table = format_table(reports_table([_report()]))
    header = table.splitlines()[0]
    for score in SCORES:
        assert score.column in header
    # Scores to table_digits (3), intervals and chance levels to context_digits (1 for CMI, 2 for tau).
    assert "12.346" in table and "0.123" in table and "-0.457" in table
    assert "[10.1, 14.6]" in table and "[0.01, 0.23]" in table and "5.4/11.1" in table


def test_figure_titles_use_the_short_names_and_context_digits():
    row = reports_table([_report()]).iloc[0]
    assert _figure_subtitle(row, 1) == "CMI 12.3 [10.1, 14.6], tau 0.12 [0.01, 0.23]\nchance CMI 5.4 (95th 11.1)"
    row = row.copy()
    row["cmi"] = float("nan")
    assert _figure_subtitle(pd.Series(row), 1).startswith("CMI n/a, tau 0.12")
