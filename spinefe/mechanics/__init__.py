"""Mechanics on the segment mesh: materials per region, linear and nonlinear elasticity, ligaments
and facet contact (point pairs), loads, stress statistics, homogenised seeds, the healthy /
tumour / implanted scenarios and the range of motion."""
