"""The forwarding fast path: HTTP/1.1 exchanges spliced between clients and upstream nodes as bytes.

aiohttp's request and response objects cost ~20x nginx's CPU per forwarded request, so forwarded
requests never become them. Each client connection is read by `ClientConnection`, which parses
request heads itself and splices bodies and answers as raw bytes; requests esproxy answers itself
(`_inference`, `_esproxy`, node info) and anything unusual go to the aiohttp application.
"""
