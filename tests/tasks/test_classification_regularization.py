"""Dropout and drop-path from the ClassificationModule's arguments: present in training, inactive in eval."""

from __future__ import annotations

import torch
from timm.layers import DropPath

from trainkit.tasks import ClassificationModule


def test_drop_path_and_dropout_reach_the_backbone_and_stop_in_eval() -> None:
    model = ClassificationModule(backbone="test_convnext", num_classes=4, in_chans=1, drop_rate=0.3, drop_path_rate=0.5)
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert rates and max(rates) == 0.5  # timm spreads the rate over depth, reaching it in the last block
    assert model.net.drop_rate == 0.3
    plain = ClassificationModule(backbone="test_convnext", num_classes=4, in_chans=1)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        model.train()
        assert not torch.allclose(model(x), model(x))  # stochastic depth and dropout are sampled in training
        model.eval(), plain.eval()
        torch.testing.assert_close(model(x), model(x))
        torch.testing.assert_close(model(x), plain(x))  # in eval the regularized model is the plain one
