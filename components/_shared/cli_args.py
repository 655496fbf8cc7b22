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


def parse_sizes(text: str, flag: str) -> list[int]:
    """`50,100,300` -> [50, 100, 300]; anything else (a zero, a negative, a word) is a ConfigError naming the flag."""
    from edgeopt.components._shared.errors import ConfigError

    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError as err:
        raise ConfigError(f"{flag} {text!r} is not a comma-separated list of integers; e.g. {flag} 50,100,300") from err
    bad = [size for size in sizes if size < 1]
    if bad:
        raise ConfigError(f"{flag} {text!r} holds sizes below 1 ({bad}); every calibration size must be >= 1")
    return sizes
