"""The README's Python sessions run as written (doctest), so the documentation stays true."""
import doctest
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SESSIONS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_python_sessions():
    assert len(SESSIONS) >= 2


@pytest.mark.parametrize("index", range(len(SESSIONS)))
def test_readme_session_runs(index):
    test = doctest.DocTestParser().get_doctest(SESSIONS[index], {}, "README session %d" % index,
                                               str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0
