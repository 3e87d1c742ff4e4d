raise RuntimeError("no database here")
