import pytest

from secured_bio import errors


def test_error_message__has_what_where_expected_got_fix():
    e = errors.SchemaError(
        "column missing", where="x.tsv", expected="IID", got="ID", fix="rename the column"
    )
    assert str(e) == "column missing [x.tsv]: expected IID, got ID. Fix: rename the column"


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.InputError, ValueError),
        (errors.SchemaError, ValueError),
        (errors.FormatError, ValueError),
        (errors.ConfigError, ValueError),
        (errors.InputFileNotFoundError, FileNotFoundError),
        (errors.PluginError, RuntimeError),
        (errors.UnknownPilotError, LookupError),
        (errors.ProtocolError, RuntimeError),
        (errors.DependencyError, ImportError),
    ],
)
def test_errors__subclass_matching_builtin(cls, builtin):
    with pytest.raises(builtin, match="boom"):
        raise cls("boom")
    assert issubclass(cls, errors.SecuredBioError)


def test_did_you_mean__suggests_close_name_only():
    assert errors.did_you_mean("telemonitorin", ["telemonitoring", "x"]) == (
        "did you mean 'telemonitoring'?"
    )
    assert errors.did_you_mean("completely_else", ["telemonitoring"]) is None
