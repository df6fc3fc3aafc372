"""The photographs of `sfcprop demo`'s clip (`sfcprop.bench.synthetic.photo_clip`); sources and
licences in LICENSES.md."""
