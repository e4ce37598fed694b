"""HTTP routes: parse, call one use-case or manager function, return its view."""
