"""One tiny run of each shipped task family: its config and the flags that make a fit take seconds."""

from __future__ import annotations

from tests.conftest import REPO

CONFIGS = REPO / "configs"
TINY_LLAMA = ("{model_type: llama, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, "
              "intermediate_size: 64, max_position_embeddings: 64}")

FAMILIES: dict[str, list[str]] = {
    "classification": ["--config", str(CONFIGS / "classification/digits.yaml"), "--model.init_args.backbone",
                       "test_resnet", "--data.init_args.image_size", "16"],
    "segmentation": ["--config", str(CONFIGS / "segmentation/shapes.yaml"), "--model.init_args.encoder", "test_resnet",
                     "--model.init_args.decoder_width", "8", "--data.init_args.num_train", "16",
                     "--data.init_args.num_val", "8", "--data.init_args.num_test", "8",
                     "--data.init_args.image_size", "32", "--data.init_args.batch_size", "8"],
    "regression (table)": ["--config", str(CONFIGS / "regression/diabetes.yaml")],
    "regression (images)": ["--config", str(CONFIGS / "regression/shape_geometry.yaml"), "--model.init_args.backbone",
                            "test_resnet", "--data.init_args.num_train", "64", "--data.init_args.num_val", "16",
                            "--data.init_args.num_test", "16", "--data.init_args.image_size", "16"],
    "metric learning": ["--config", str(CONFIGS / "metric_learning/digits.yaml"), "--model.init_args.backbone",
                        "test_resnet", "--data.init_args.data.init_args.image_size", "16",
                        "--data.init_args.classes_per_batch", "5", "--data.init_args.samples_per_class", "4"],
    "distillation": ["--config", str(CONFIGS / "distillation/digits.yaml"), "--model.init_args.teacher",
                     '{"class_path": "tests.cli.user_nets.TinyTeacher"}', "--model.init_args.backbone", "test_resnet",
                     "--data.init_args.image_size", "16"],
    "language": ["--config", str(CONFIGS / "language/sft.yaml"), "--model.init_args.model_config", TINY_LLAMA,
                 "--data.init_args.generated", "64", "--data.init_args.generated_val", "8",
                 "--data.init_args.generated_test", "8", "--data.init_args.batch_size", "8"],
}
"""Family -> `--config` and the flags of a tiny run (no trainer limits: each test sets its own)."""
