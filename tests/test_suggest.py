from execnet_cli.suggest import close_matches, did_you_mean


def test_a_near_miss_is_suggested():
    assert did_you_mean("pyhton", ["python", "chdir"]) == " (did you mean 'python'?)"


def test_several_near_misses_best_first():
    assert close_matches("web", ["db", "web1", "webs", "mail"]) == ["webs", "web1"]
    assert did_you_mean("web", ["web1", "webs"]) == " (did you mean 'webs' or 'web1'?)"


def test_nothing_alike_gives_no_hint():
    assert did_you_mean("zzz", ["python", "chdir"]) == ""
    assert did_you_mean("x", []) == ""


def test_at_most_n_suggestions():
    assert len(close_matches("host", ["host1", "host2", "host3", "host4"], n=2)) == 2
