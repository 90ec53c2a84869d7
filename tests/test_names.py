from sdfit.names import canonical, close_matches, did_you_mean, match_pattern

NAMES = [f"dec {k} loss rate" for k in range(1, 10)] + ["dec 1", "births", "rate[dec 3]"]


def test_canonical_treats_case_spaces_and_underscores_alike():
    assert canonical("Dec_1") == canonical("dec  1") == canonical(' "dec 1" ') == "dec 1"
    assert canonical("dec_1") != canonical("dec 10")


def test_glob_matches_in_model_order_and_exact_names_match_canonically():
    assert match_pattern("dec * loss rate", NAMES) == NAMES[:9]
    assert match_pattern("DEC_3_LOSS_RATE", NAMES) == ["dec 3 loss rate"]
    assert match_pattern("dec ? loss rate", NAMES) == NAMES[:9]
    assert match_pattern("dec 1*", NAMES) == ["dec 1 loss rate", "dec 1"]


def test_brackets_are_subscripts_not_glob_classes():
    assert match_pattern("rate[dec 3]", NAMES) == ["rate[dec 3]"]
    assert match_pattern("rate[*]", NAMES) == ["rate[dec 3]"]


def test_suggestions_for_misspelt_names():
    assert close_matches("dec 3 los rate", NAMES)[0] == "dec 3 loss rate"
    assert did_you_mean("birth", NAMES) == " Did you mean 'births'?"
    assert did_you_mean("zzz", NAMES) == ""
