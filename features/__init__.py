"""The feature layer: raw events in, the models' features out, the same way online
(a transformer, per request) and offline (training sets by point-in-time joins).

`riskserve.features.card` holds the fraud features as plain functions over a card's
state; `riskserve.features.repo` the Feast definitions (entities, feature views,
on-demand views, push sources) that serve and train from them.
"""
