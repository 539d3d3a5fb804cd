"""CDISC data exchange: SDTM TU/TR/RS and ADaM ADRS/ADTTE in and out of the engine.

This package is part of the imperative shell: it reads and writes CSV files (with pandas)
and turns SDTM records into cases of the ``recist assess`` JSON contract
(``docs/contracts.md``) and engine results back into SDTM and ADaM records. The engine
(:mod:`recist`) never imports it.
"""
