"""Bluetooth LE for the node: the console protocol over a Nordic UART
service, binary totals, Device Information and BTHome v2 adverts
(docs/ble.md). ble.radio needs the port's `bluetooth` module; ble.bthome,
ble.totals and ble.ccm are pure."""
