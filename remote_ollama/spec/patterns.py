"""The regular expressions of the spec's string fields, shared by the field table (and so the CRD)
and the parsers. Pure data."""

# Names that end up in an API URL path (Secret names): a DNS-1123 subdomain, as Kubernetes requires.
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?h)?([0-9]+(\.[0-9]+)?m)?([0-9]+(\.[0-9]+)?s)?$|^[0-9]+$"
INSTANCE_TYPE_PATTERN = r"^[a-z0-9]+\.[a-z0-9]+(-[a-z0-9]+)*$"
MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}$"
KEEP_ALIVE_PATTERN = r"^-1$|^0$|^[0-9]+(\.[0-9]+)?(ms|s|m|h)$|^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
CLOCK_PATTERN = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
OLLAMA_IMAGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:-]*(@sha256:[a-f0-9]{64})?$"
OLLAMA_ENV_KEY_PATTERN = r"^OLLAMA_[A-Z0-9_]+$"
# Values are written into the VM's container arguments by cloud-init: nothing that quotes or expands.
OLLAMA_ENV_VALUE_PATTERN = "^[^\\n\\r\"'\\\\%$`]*$"
CIDR_PATTERN = (
    r"^(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    r"/([0-9]|[12][0-9]|3[0-2])|[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){2,7}/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))$"
)
