"""analysis/fitters"""
