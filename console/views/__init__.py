"""Console views (staff only), one module per page. Thin: forms validate, services and
selectors act, the same ones the API and the commands call."""
