"""The segment's shape: analytic anatomy, the placement of every part (`layout`, which also checks
a configuration's geometry), the gmsh OCC model (`occ`) and the distributed mesh with its cache
(`mesh`)."""
