from drf_spectacular.openapi import AutoSchema


class ShepherdAutoSchema(AutoSchema):
    """Names nested Input/OutputSerializers after their view: CriterionListApi's
    InputSerializer becomes the component "CriterionListInput", not one of many "Input"s."""

    def get_serializer_name(self, serializer, direction):
        qualname = type(serializer).__qualname__
        if "." in qualname:
            owner, inner = qualname.rsplit(".", 1)
            return owner.removesuffix("Api").replace(".", "") + inner.removesuffix("Serializer")
        return super().get_serializer_name(serializer, direction)
