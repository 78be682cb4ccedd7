"""pyblish plug-ins of priorfx, shipped in the wheel as priorfx.publish.plugins. pyblish skips this file (its name starts with an underscore)."""
