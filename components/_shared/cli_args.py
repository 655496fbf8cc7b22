"""Command-line arguments several `edgeopt` commands share, so they read and behave the same everywhere."""


def add_model_and_data_args(parser):
    """--model, --examples and exactly one of --data-spec or --module-file."""
    parser.add_argument("--model", required=True, help="SavedModel folder, .keras file or TFX Trainer output")
    parser.add_argument("--examples", required=True, help="TFX Examples folder with Split-NAME/ subfolders")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-spec", help="YAML data spec (dense numeric features)")
    source.add_argument(
        "--module-file", help="Trainer module (file or import name) with input_fn(file_pattern, batch_size)"
    )
