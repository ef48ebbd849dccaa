"""The live system's network links that need more than DHCP: Wi-Fi (rescue.net.wifi).

A probe-and-act layer beside ``rescue.devices``: it reads /sys/class/net and drives
wpa_supplicant and dhclient; nothing here runs at import time or imports textual."""
