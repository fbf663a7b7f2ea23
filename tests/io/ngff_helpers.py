"""Editing NGFF metadata in tests, whatever the NGFF version written."""
def ngff_attrs(group):
    """The dict that holds ``multiscales`` (``attrs["ome"]`` in NGFF 0.5, the attributes in 0.4) and a setter."""
    attrs = dict(group.attrs)
    if "ome" in attrs:
        ome = dict(attrs["ome"])

        def save(ms):
            group.attrs["ome"] = {**ome, "multiscales": ms}
        return ome, save

    def save(ms):
        group.attrs["multiscales"] = ms
    return attrs, save
