from sftvsrl.study.run import no_gain


def hist(key, values):
    return [{key: v} for v in values]


def test_success_stops_after_patience_without_a_new_best():
    assert not no_gain(hist("val_success", [0.1, 0.2]), "val_success", 2)  # too few to judge
    assert not no_gain(hist("val_success", [0.1, 0.2, 0.3]), "val_success", 2)
    assert no_gain(hist("val_success", [0.1, 0.3, 0.3, 0.2]), "val_success", 2)  # ties are no gain
    assert not no_gain(hist("val_success", [0.1, 0.3, 0.2, 0.4]), "val_success", 2)


def test_loss_is_lower_is_better():
    assert not no_gain(hist("val_loss", [2.0, 1.5, 1.2]), "val_loss", 2)
    assert no_gain(hist("val_loss", [2.0, 1.0, 1.1, 1.3]), "val_loss", 2)
    assert not no_gain(hist("val_loss", [2.0, 1.0, 1.1, 0.9]), "val_loss", 2)


def test_missing_values_or_no_patience_never_stop():
    assert not no_gain(hist("val_loss", [2.0, None, 3.0, 4.0]), "val_loss", 2)
    assert not no_gain(hist("val_loss", [1.0, 2.0, 3.0, 4.0]), "val_loss", None)
