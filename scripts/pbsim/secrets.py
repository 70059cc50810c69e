"""Fake but realistic secrets that the stock snapshot carries in clear text.

The real device sends its Wi-Fi and AP passwords to every WebSocket client in
the connect snapshot. The product must never log them; its tests import these
constants and assert that none of them shows up in any log.
"""

SECRET_WIFI_SSID = "HomeLab-IoT"
SECRET_WIFI_PASSWORD = "sim-wifi-Passw0rd-7Q4x9Z"
SECRET_AP_PASSWORD = "sim-ap-Passw0rd-3K8m2R"

#: Every secret value the simulator can put on the wire.
SECRET_STRINGS: tuple[str, ...] = (SECRET_WIFI_PASSWORD, SECRET_AP_PASSWORD)
#: Short alias used by the product's tests.
SECRETS = SECRET_STRINGS
