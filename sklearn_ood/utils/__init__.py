"""Small utilities shared by the estimators."""

from ._images import ImageInfo, center_crop, check_images, resize_images, to_minus1_1

__all__ = ["ImageInfo", "center_crop", "check_images", "resize_images", "to_minus1_1"]
