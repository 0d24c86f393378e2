"""BME280: the datasheet's compensation vectors, then the whole driver against a register map.

There is no I2C bus on a test machine, so the one fake in these tests stands at smbus2's
SMBus interface: a register-level model of the chip (chip id, calibration NVM, forced
mode with a measuring bit, data registers that hold their reset values until a
measurement runs). Everything above that interface is the real driver.
"""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beam_agent.drivers import resolve_driver
from beam_agent.drivers.base import DriverError, OptionError
from beam_agent.drivers.bme280 import (
    BME280Driver,
    Calibration,
    altitude_m,
    compensate_humidity,
    compensate_pressure,
    compensate_temperature,
    open_smbus,
    parse_calibration,
)

from tests.support.readings import assert_json_payload

# Temperature and pressure: the worked example of Bosch's BMP280 datasheet
# (BST-BMP280-DS001, section 3.12), whose formulas the BME280 datasheet (BST-BME280-DS002,
# section 8.1) repeats unchanged. The BME280 datasheet gives no humidity example; the
# humidity words below are typical of production parts, and the expected humidity is
# computed in this file by the datasheet's *integer* formula (section 4.2.3), a second,
# independent implementation of the same compensation (see humidity_int32 below).
CAL = Calibration(
    dig_T1=27504, dig_T2=26435, dig_T3=-1000,
    dig_P1=36477, dig_P2=-10685, dig_P3=3024, dig_P4=2855, dig_P5=140, dig_P6=-7,
    dig_P7=15500, dig_P8=-14600, dig_P9=6000,
    dig_H1=75, dig_H2=362, dig_H3=0, dig_H4=313, dig_H5=50, dig_H6=30,
)  # fmt: skip
ADC_T = 519888
ADC_P = 415148
ADC_H = 30000


def humidity_int32(adc_h: int, t_fine: int, cal: Calibration) -> float:
    """bme280_compensate_H_int32 from the datasheet, section 4.2.3, in %RH (it returns Q22.10).

    Python's >> on negative numbers is an arithmetic shift, as on the C compilers Bosch targets.
    """
    v = t_fine - 76800
    v = (
        (((adc_h << 14) - (cal.dig_H4 << 20) - (cal.dig_H5 * v)) + 16384) >> 15
    ) * (
        (
            (
                (((v * cal.dig_H6) >> 10) * (((v * cal.dig_H3) >> 11) + 32768)) >> 10
            ) + 2097152
        ) * cal.dig_H2 + 8192
        >> 14
    )  # fmt: skip
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * cal.dig_H1) >> 4)
    v = min(max(v, 0), 419430400)
    return (v >> 12) / 1024.0


def calibration_registers(cal: Calibration) -> dict[int, int]:
    """Encode calibration words the way the chip's NVM holds them (datasheet table 16)."""
    tp = struct.pack(
        "<HhhHhhhhhhhh",
        cal.dig_T1, cal.dig_T2, cal.dig_T3, cal.dig_P1, cal.dig_P2, cal.dig_P3,
        cal.dig_P4, cal.dig_P5, cal.dig_P6, cal.dig_P7, cal.dig_P8, cal.dig_P9,
    ) + bytes([0x00, cal.dig_H1])  # fmt: skip
    h = struct.pack("<hB", cal.dig_H2, cal.dig_H3) + bytes([
        (cal.dig_H4 >> 4) & 0xFF,
        ((cal.dig_H5 & 0x0F) << 4) | (cal.dig_H4 & 0x0F),
        (cal.dig_H5 >> 4) & 0xFF,
        cal.dig_H6 & 0xFF,
    ])  # fmt: skip
    registers = {0x88 + i: b for i, b in enumerate(tp)}
    registers.update({0xE1 + i: b for i, b in enumerate(h)})
    return registers


def raw_data(adc_p: int, adc_t: int, adc_h: int) -> bytes:
    return bytes([
        adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4,
        adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4,
        adc_h >> 8, adc_h & 0xFF,
    ])  # fmt: skip


class FakeBME280Bus:
    """A BME280 behind smbus2.SMBus's methods, modelled at register level."""

    def __init__(
        self,
        bus: int,
        *,
        address: int = 0x76,
        chip_id: int = 0x60,
        measuring_polls: int = 2,
        adc: tuple[int, int, int] = (ADC_P, ADC_T, ADC_H),
        calibration: Calibration = CAL,
    ) -> None:
        self.bus = bus
        self.address = address
        self.registers = bytearray(256)
        self.registers[0xD0] = chip_id
        for register, value in calibration_registers(calibration).items():
            self.registers[register] = value
        self.registers[0xF7:0xFF] = raw_data(0x80000, 0x80000, 0x8000)  # reset values
        self.adc = adc
        self.measuring_polls = measuring_polls
        self.polls_left = 0
        self.writes: list[tuple[int, int]] = []
        self.block_reads: list[tuple[int, int]] = []
        self.measurements = 0
        self.closed = False

    def _check(self, address: int) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "bus is closed")
        if address != self.address:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        self._check(i2c_addr)
        if register == 0xF3 and self.polls_left > 0:  # measuring
            self.polls_left -= 1
            if self.polls_left == 0:
                self._finish_measurement()
            return 0x08
        return self.registers[register]

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        self._check(i2c_addr)
        self.block_reads.append((register, length))
        return list(self.registers[register : register + length])

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._check(i2c_addr)
        self.writes.append((register, value))
        self.registers[register] = value
        if register == 0xF4 and value & 0x03 in (0x01, 0x02):  # forced mode starts a conversion
            self.polls_left = self.measuring_polls
            if self.measuring_polls == 0:
                self._finish_measurement()

    def _finish_measurement(self) -> None:
        self.registers[0xF7:0xFF] = raw_data(*self.adc)
        self.registers[0xF4] &= 0xFC  # back to sleep mode
        self.measurements += 1

    def close(self) -> None:
        self.closed = True


class BusFactory:
    """Stands in for smbus2.SMBus: opens FakeBME280Bus objects and remembers them."""

    def __init__(self) -> None:
        self.opened: list[FakeBME280Bus] = []
        self.settings: dict[str, Any] = {}  # what the next bus opened looks like

    def __call__(self, bus: int) -> FakeBME280Bus:
        fake = FakeBME280Bus(bus, **self.settings)
        self.opened.append(fake)
        return fake


@pytest.fixture
def buses(monkeypatch: pytest.MonkeyPatch) -> BusFactory:
    factory = BusFactory()
    monkeypatch.setattr(BME280Driver, "bus_factory", factory)
    return factory


# --- the compensation math -----------------------------------------------------------


def test_temperature_matches_the_datasheet_example() -> None:
    temperature, t_fine = compensate_temperature(ADC_T, CAL)
    assert t_fine == 128422
    assert round(temperature, 2) == 25.08


def test_pressure_matches_the_datasheet_example() -> None:
    _, t_fine = compensate_temperature(ADC_T, CAL)
    pressure = compensate_pressure(ADC_P, t_fine, CAL)
    assert pressure is not None
    # The datasheet's 100653.27 Pa was computed with the untruncated t_fine (128422.2869);
    # the formula's own int32 t_fine moves the result by 0.009 Pa (the sensor resolves 0.18).
    assert pressure == pytest.approx(100653.27, abs=0.02)
    unrounded = compensate_pressure(ADC_P, 128422.2869, CAL)
    assert unrounded is not None
    assert round(unrounded, 2) == 100653.27


def test_pressure_with_a_zero_dig_p1_is_none_instead_of_a_division_by_zero() -> None:
    broken = Calibration(**{**CAL.__dict__, "dig_P1": 0})
    assert compensate_pressure(ADC_P, 128422, broken) is None


def test_humidity_matches_the_datasheet_integer_formula() -> None:
    _, t_fine = compensate_temperature(ADC_T, CAL)
    expected = humidity_int32(ADC_H, t_fine, CAL)
    assert 54.0 < expected < 56.0  # the vector lands mid-range, where clamping plays no part
    assert compensate_humidity(ADC_H, t_fine, CAL) == pytest.approx(expected, abs=0.01)


@given(
    adc_h=st.integers(min_value=0, max_value=0xFFFF),
    t_fine=st.integers(min_value=-204800, max_value=435200),
)  # -40..85 °C, the rated range
def test_double_and_integer_humidity_formulas_agree(adc_h: int, t_fine: int) -> None:
    # The Q22.10 integer result is truncated to 1/1024 %RH; allow a few of those steps.
    assert compensate_humidity(adc_h, t_fine, CAL) == pytest.approx(
        humidity_int32(adc_h, t_fine, CAL), abs=0.01
    )


def test_humidity_is_clamped_to_the_physical_range() -> None:
    _, t_fine = compensate_temperature(ADC_T, CAL)
    assert compensate_humidity(0, t_fine, CAL) == 0.0
    assert compensate_humidity(0xFFFF, t_fine, CAL) == 100.0


@pytest.mark.parametrize("h4, h5", [(313, 50), (-1, -2048), (2047, 1234), (-300, -7)])
def test_calibration_registers_decode_including_the_shared_nibble(h4: int, h5: int) -> None:
    cal = Calibration(**{**CAL.__dict__, "dig_H4": h4, "dig_H5": h5, "dig_H6": -30})
    registers = calibration_registers(cal)
    tp = bytes(registers[0x88 + i] for i in range(26))
    h = bytes(registers[0xE1 + i] for i in range(7))
    assert parse_calibration(tp, h) == cal


def test_calibration_blocks_of_the_wrong_length_are_rejected() -> None:
    with pytest.raises(ValueError, match="26 and 7 bytes"):
        parse_calibration(b"\x00" * 24, b"\x00" * 7)


def test_altitude_is_zero_at_sea_level_and_grows_as_pressure_falls() -> None:
    assert altitude_m(1013.25, 1013.25) == 0.0
    assert altitude_m(899.0, 1013.25) == pytest.approx(1000.0, abs=5.0)  # standard atmosphere


# --- the driver against the register map ---------------------------------------------


def test_read_reports_the_compensated_values(buses: BusFactory) -> None:
    driver = BME280Driver({})
    [sample] = driver.read()
    assert_json_payload(sample.payload)
    _, t_fine = compensate_temperature(ADC_T, CAL)
    assert sample.sensor_type == "bme280"
    assert sample.payload == {
        "temperature_c": 25.08,
        "pressure_hpa": pytest.approx(1006.5327, abs=0.001),
        "humidity_pct": pytest.approx(humidity_int32(ADC_H, t_fine, CAL), abs=0.01),
    }
    assert [bus.bus for bus in buses.opened] == [1]


def test_altitude_is_reported_when_sea_level_pressure_is_configured(buses: BusFactory) -> None:
    [sample] = BME280Driver({"sea_level_hpa": 1020.0}).read()
    expected = 44330.0 * (1 - (sample.payload["pressure_hpa"] / 1020.0) ** (1 / 5.255))
    assert sample.payload["altitude_m"] == pytest.approx(expected, abs=0.01)
    assert 100 < sample.payload["altitude_m"] < 120  # 1006.5 hPa under 1020 hPa: ~110 m


def test_registers_are_written_as_the_datasheet_requires(buses: BusFactory) -> None:
    buses.settings.update(address=0x77)
    driver = BME280Driver(
        {
            "bus": 3,
            "address": 0x77,
            "temperature_oversampling": 2,
            "pressure_oversampling": 16,
            "humidity_oversampling": 4,
            "iir_filter": 8,
        }
    )
    driver.read()
    [bus] = buses.opened
    assert bus.bus == 3
    written = dict(bus.writes)
    assert written[0xF2] == 0b011  # osrs_h x4
    assert written[0xF5] == 0b011 << 2  # filter coefficient 8
    assert written[0xF4] == (0b010 << 5) | (0b101 << 2) | 0b01  # osrs_t x2, osrs_p x16, forced
    order = [register for register, _ in bus.writes]
    assert order.index(0xF2) < order.index(0xF4)  # ctrl_hum only applies after a ctrl_meas write
    assert bus.block_reads[-1] == (0xF7, 8)  # one burst read keeps the three values consistent


def test_each_read_is_a_new_forced_measurement_on_the_same_connection(buses: BusFactory) -> None:
    driver = BME280Driver({})
    first = driver.read()
    buses.opened[0].adc = (ADC_P, ADC_T + 10000, ADC_H)  # warmer
    second = driver.read()
    assert len(buses.opened) == 1
    assert buses.opened[0].measurements == 2
    calibration_reads = [r for r in buses.opened[0].block_reads if r[0] in (0x88, 0xE1)]
    assert len(calibration_reads) == 2  # read once per connection, not once per read
    assert second[0].payload["temperature_c"] > first[0].payload["temperature_c"]
    driver.close()
    assert buses.opened[0].closed


def test_a_wrong_chip_id_is_a_driver_error(buses: BusFactory) -> None:
    buses.settings.update(chip_id=0x58)
    driver = BME280Driver({})
    with pytest.raises(DriverError, match=r"chip id is 0x58, not 0x60"):
        driver.read()
    assert buses.opened[0].closed


def test_no_device_at_the_address_is_a_driver_error(buses: BusFactory) -> None:
    buses.settings.update(address=0x77)
    with pytest.raises(DriverError, match=r"0x76 on /dev/i2c-1: no answer"):
        BME280Driver({}).read()


def test_a_measurement_that_never_finishes_is_a_driver_error(buses: BusFactory) -> None:
    buses.settings.update(measuring_polls=10**9)
    with pytest.raises(DriverError, match="still measuring"):
        BME280Driver({}).read()


def test_data_registers_at_their_reset_values_are_a_driver_error(buses: BusFactory) -> None:
    buses.settings.update(adc=(0x80000, 0x80000, 0x8000))
    with pytest.raises(DriverError, match="did not run"):
        BME280Driver({}).read()


def test_after_an_error_the_next_read_reopens_the_bus(buses: BusFactory) -> None:
    buses.settings.update(chip_id=0x00)
    driver = BME280Driver({})
    with pytest.raises(DriverError):
        driver.read()
    buses.settings.update(chip_id=0x60)
    [sample] = driver.read()
    assert sample.payload["temperature_c"] == 25.08
    assert len(buses.opened) == 2
    assert buses.opened[0].closed and not buses.opened[1].closed


def test_a_missing_bus_is_a_driver_error_from_the_real_smbus2() -> None:
    assert BME280Driver.bus_factory is open_smbus
    driver = BME280Driver({"bus": 250})
    with pytest.raises(DriverError, match=r"cannot open I2C bus /dev/i2c-250"):
        driver.read()


def test_constructing_the_driver_touches_no_hardware(buses: BusFactory) -> None:
    BME280Driver({"bus": 7})
    assert buses.opened == []


# --- options --------------------------------------------------------------------------


def test_registered_under_its_type_name_with_documented_options() -> None:
    assert resolve_driver("bme280") is BME280Driver
    assert BME280Driver.description
    assert all(option.help for option in BME280Driver.options)


def test_defaults() -> None:
    assert BME280Driver.validate_options({}) == {
        "bus": 1,
        "address": 0x76,
        "temperature_oversampling": 1,
        "pressure_oversampling": 1,
        "humidity_oversampling": 1,
        "iir_filter": 0,
        "sea_level_hpa": None,
    }


def test_validated_options_construct_the_driver_as_the_config_loader_does() -> None:
    options = BME280Driver.validate_options({})
    assert BME280Driver.validate_options(options) == options  # validating twice changes nothing
    assert BME280Driver(options).config == options


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"adress": 0x76}, "adress"),
        ({"address": 0x40}, "address"),
        ({"address": "0x76"}, "address"),
        ({"bus": -1}, "bus"),
        ({"bus": 1.5}, "bus"),
        ({"humidity_oversampling": 3}, "humidity_oversampling"),
        ({"iir_filter": 1}, "iir_filter"),
        ({"sea_level_hpa": 5000}, "sea_level_hpa"),
        ({"sea_level_hpa": "1013"}, "sea_level_hpa"),
    ],
)
def test_bad_options_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(OptionError) as caught:
        BME280Driver.validate_options(raw)
    assert caught.value.key == key


def test_sea_level_accepts_an_integer() -> None:
    assert BME280Driver.validate_options({"sea_level_hpa": 1013})["sea_level_hpa"] == 1013.0
