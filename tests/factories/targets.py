"""Outbound targets that production rules refuse when they are set: credentials, odd host forms, names and
addresses that are not public, plain http. The message of a refusal never repeats the password ``s3cret``."""

REFUSED = [
    "https://alice:s3cret@hooks.partner.example/in",
    "https://alice@hooks.partner.example/in",
    "https://localhost./in",
    "https://localhost/in",
    "https://hooks.localhost/in",
    "https://100.100.100.200/latest/meta-data",
    "https://169.254.169.254/latest/meta-data",
    "https://2130706433/in",
    "https://0x7f.1/in",
    "https://0177.0.0.1/in",
    "https://127.1/in",
    "https://127.0.0.1/in",
    "https://10.0.0.7/in",
    "https://[::1]/in",
    "https://[::ffff:169.254.169.254]/in",
    "https://intranet/in",
    "http://hooks.partner.example/in",
    "https://hooks.partner.example\\@127.0.0.1/in",
    "ftp://hooks.partner.example/in",
]
